"""Miner utilization on a short local run: share of wall time spent in training steps.

Starts a dev chain (subprocess), a local S3 (thread), the scripted leader from the miner tests,
and N miners as real processes (``neurons/miner.py``, training until each window ends), runs
for a few windows, then prints each miner's train_seconds_total / wall_seconds_total from its
status file as JSON. Usage:

    .venv/bin/python scripts/bench_miner_utilization.py --miners 2 --windows 6 --block-time 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from template.chain.devchain.launch import start_devchain_process  # noqa: E402
from template.hparams import load_hparams  # noqa: E402
from template.node.status import read_status  # noqa: E402
from template.storage.local_server import start_local_s3  # noqa: E402
from tests.miner.conftest import (  # noqa: E402
    create_bucket,
    make_wallet,
    miner_argv,
    register,
    write_hparams,
    write_storage,
)
from tests.miner.scripted_leader import ScriptedLeader  # noqa: E402


def _dataset(folder: Path) -> Path:
    from template.training.shards import write_shards
    from template.training.tokenizer import ByteTokenizer
    from tests.conftest import corpus_text

    tok = ByteTokenizer()
    text = corpus_text()
    docs = [tok.encode(text[i : i + 50_000]) + [tok.eot_id] for i in range(0, len(text), 50_000)]
    write_shards(docs, folder, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=150_000)
    return folder


async def bench(args: argparse.Namespace, tmp: Path) -> dict:
    hp = load_hparams(args.hparams)
    hp_file = write_hparams(tmp / "hp.toml", hp)
    dataset = _dataset(tmp / "dataset")
    s3 = start_local_s3()
    chain = await asyncio.to_thread(
        start_devchain_process, tmp / "chain.sqlite", block_time=args.block_time, tempo=5,
        log_path=tmp / "chain.log",
    )  # fmt: skip
    procs, states = [], []
    leader = await ScriptedLeader.create(chain.url, hp, s3.bucket(f"lead-{uuid.uuid4().hex[:6]}"))
    lead_task = asyncio.create_task(leader.run())
    try:
        for i in range(args.miners):
            name = f"m{i}"
            wallet = make_wallet(tmp / "wallets", name)
            await register(chain.url, wallet)
            cfg = s3.bucket(f"{name}-{uuid.uuid4().hex[:6]}")
            await create_bucket(cfg)
            state = tmp / f"state-{name}"
            argv = miner_argv(
                url=chain.url, wallet_root=tmp / "wallets", name=name, hparams=hp_file,
                storage=write_storage(tmp / f"{name}.toml", cfg), dataset=dataset, state=state,
                max_windows=args.windows, max_steps=0,
            )  # fmt: skip
            env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPLATE_S3_")}
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "neurons" / "miner.py"), *argv],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )  # fmt: skip
            )
            states.append(state)
        t0 = time.monotonic()
        while any(p.poll() is None for p in procs):
            if time.monotonic() - t0 > args.timeout:
                raise TimeoutError("miners did not finish in time")
            await asyncio.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        lead_task.cancel()
        await asyncio.gather(lead_task, return_exceptions=True)
        await leader.close()
        chain.stop()
        s3.stop()
    miners = []
    for state in states:
        st = read_status(state) or {}
        miners.append(
            {
                k: st.get(k)
                for k in (
                    "uid",
                    "window",
                    "utilization",
                    "train_seconds_total",
                    "wall_seconds_total",
                    "uploads_done",
                    "uploads_missed",
                    "tokens_per_s",
                    "in_sync",
                    "fingerprint_ok",
                    "applied_through",
                )
            }  # fmt: skip
        )
    return {
        "benchmark": "miner_utilization",
        "hparams": hp.name,
        "miners": args.miners,
        "windows": args.windows,
        "block_time_s": args.block_time,
        "window_s": hp.window.blocks_per_window * args.block_time,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "results": miners,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hparams", default="tiny")
    p.add_argument("--miners", type=int, default=2)
    p.add_argument("--windows", type=int, default=6)
    p.add_argument("--block-time", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(bench(args, Path(tmp))), indent=2))


if __name__ == "__main__":
    main()
