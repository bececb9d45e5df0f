"""A stand-in neuron for the local subnet's own tests: the real CLI and status-file contract,
no training. It follows the chain's windows, writes status.json after each one and (validator)
sets equal weights on every other uid once it holds a permit."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from template.chain.config import connect_chain  # noqa: E402
from template.hparams import load_hparams  # noqa: E402
from template.node.args import add_node_args, state_dir  # noqa: E402
from template.node.keys import load_hotkey  # noqa: E402
from template.node.status import write_status  # noqa: E402


async def run(role: str, args: argparse.Namespace) -> None:
    hp = load_hparams(args.hparams)
    bpw = hp.window.blocks_per_window
    keys = load_hotkey(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    chain = await connect_chain(args, keys.hotkey)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    uid = await chain.uid_of(keys.hotkey.ss58_address)
    done = weights_set = 0
    block = await chain.block()
    w = block // bpw
    try:
        while not stop.is_set():
            await chain.wait_for_block((w + 1) * bpw, timeout=120)
            status = {
                "role": role,
                "hotkey": keys.hotkey.ss58_address,
                "uid": uid,
                "window": w,
                "block": await chain.block(),
                "in_sync": True,
                "applied_through": w - 1,
            }
            if role == "miner":
                done += 1
                status.update(loss=5.0 - 0.1 * done, uploads_done=done, uploads_missed=0)
            else:
                mg = await chain.metagraph()
                others = [n.uid for n in mg.neurons if n.uid != uid]
                try:
                    await chain.set_weights(others, [1.0] * len(others), 0)
                    weights_set += 1
                except Exception as e:  # noqa: BLE001 - no permit yet
                    print(f"set_weights: {e}", flush=True)
                status.update(
                    heldout_loss=5.0 - 0.1 * (w % 50),
                    uploads_seen=len(others),
                    uploads_valid=len(others),
                    scores={u: 1.0 for u in others},
                    weights_set=weights_set,
                    is_leader=True,
                )
            write_status(state_dir(args, role), status)
            print(f"window {w} done", flush=True)
            w += 1
    finally:
        await chain.close()


def main(role: str) -> None:
    p = argparse.ArgumentParser()
    add_node_args(p, role)
    args = p.parse_args()
    asyncio.run(run(role, args))
