"""Create a subnet, wallets, registrations and stake on a subtensor localnet (docker).

Run by ``scripts/subtensor_localnet.sh``; also usable alone against any node where //Alice is
sudo. Wallets are btcli-compatible folders with UNENCRYPTED coldkeys (local testing only) and
are reused when they already exist. Prints a JSON summary with the flags the neurons need.

    .venv/bin/python scripts/subtensor_localnet_setup.py --endpoint ws://127.0.0.1:9944
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import bittensor as bt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.chain.errors import AlreadyRegisteredError  # noqa: E402
from template.chain.subtensor import SubtensorChain  # noqa: E402
from template.chain.subtensor_localnet import (  # noqa: E402
    LocalnetSubnetConfig,
    fund,
    prepare_subnet,
)
from template.signing import dev_keypair  # noqa: E402

logger = logging.getLogger("subtensor_localnet_setup")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", default="ws://127.0.0.1:9944", help="subtensor ws(s) URL")
    p.add_argument("--netuid", type=int, default=None, help="reuse this subnet (default: create)")
    p.add_argument("--wallet-path", default="~/.bittensor/wallets", help="where wallets live")
    p.add_argument("--prefix", default="localnet", help="wallet name prefix")
    p.add_argument("--miners", type=int, default=2, help="miner wallets to register")
    p.add_argument("--validators", type=int, default=1, help="validator wallets to register")
    p.add_argument("--validator-stake", type=float, default=100.0, help="TAO staked per validator")
    p.add_argument("--tempo", type=int, default=10, help="subnet tempo in blocks")
    p.add_argument("--out", default=None, help="also write the JSON summary to this file")
    return p.parse_args(argv)


def ensure_wallet(name: str, path: str) -> bt.Wallet:
    """Open wallet ``name`` (hotkey ``default``), creating unencrypted keys if missing."""
    wallet = bt.Wallet(name, "default", path=path)
    wallet_dir = Path(path).expanduser() / name
    if not (wallet_dir / "coldkey").exists():
        wallet.create_new_coldkey(use_password=False, suppress=True)
        logger.info("created coldkey of wallet %s", name)
    if not (wallet_dir / "hotkeys" / "default").exists():
        wallet.create_new_hotkey(use_password=False, suppress=True)
        logger.info("created hotkey of wallet %s", name)
    return wallet


async def register(endpoint: str, netuid: int, wallet: bt.Wallet, stake: float) -> int:
    chain = await SubtensorChain(endpoint, netuid, wallet.hotkey, wallet.coldkey).connect()
    try:
        try:
            uid = await chain.register()
        except AlreadyRegisteredError:
            uid = await chain.uid_of(chain.hotkey)
            assert uid is not None
        if stake > 0:
            await chain.add_stake(stake)
        return uid
    finally:
        await chain.close()


async def main(args: argparse.Namespace) -> dict:
    alice = dev_keypair("//Alice")
    client = bt.Client(args.endpoint, fallback_endpoints=[], archive_endpoints=[])
    await client.connect()
    try:
        netuid = args.netuid
        if netuid is None:
            owner_hot = dev_keypair("//Alice//subnet-owner")
            config = LocalnetSubnetConfig(tempo=args.tempo)
            netuid = await prepare_subnet(client, alice, owner_hot.ss58_address, config)
        roles = [("validator", i) for i in range(args.validators)]
        roles += [("miner", i) for i in range(args.miners)]
        wallets = {}
        for role, i in roles:
            name = f"{args.prefix}-{role}-{i}"
            wallet = ensure_wallet(name, args.wallet_path)
            await fund(
                client,
                alice,
                wallet.coldkeypub.ss58_address,
                1000.0 if role == "validator" else 100.0,
            )
            wallets[name] = (role, wallet)
    finally:
        await client.close()

    summary = {"endpoint": args.endpoint, "netuid": netuid, "wallet_path": args.wallet_path}
    nodes = []
    for name, (role, wallet) in wallets.items():
        stake = args.validator_stake if role == "validator" else 0.0
        uid = await register(args.endpoint, netuid, wallet, stake)
        nodes.append(
            {
                "role": role,
                "wallet": name,
                "hotkey": wallet.hotkeypub.ss58_address,
                "uid": uid,
                "flags": f"--subtensor.chain_endpoint {args.endpoint} --netuid {netuid} "
                f"--wallet.name {name} --wallet.hotkey default",
            }
        )
    summary["nodes"] = nodes
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cli = parse_args()
    result = asyncio.run(main(cli))
    text = json.dumps(result, indent=2)
    print(text)
    if cli.out:
        Path(cli.out).write_text(text + "\n")
