"""What btcli does on a real chain, for the dev chain: fund, register, stake, create a subnet,
set subnet parameters, trigger an epoch. Keys come from btcli wallets (``-w/-H/--wallet-path``,
as made by ``btcli -y wallet create -w NAME -H default --no-password``) or dev URIs (``//Bob``).

python -m template.chain.devchain fund --to-wallet miner1 --tao 100
python -m template.chain.devchain register -w miner1 --netuid 1
python -m template.chain.devchain stake -w validator1 --tao 500 --netuid 1
python -m template.chain.devchain create-subnet --uri //Alice --netuid 2 tempo=20
python -m template.chain.devchain set --uri //Alice --netuid 1 commit_reveal=0 tempo=30
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from ...signing import dev_keypair
from ..errors import ChainError
from .client import DevChainClient

COMMANDS = ("fund", "register", "stake", "create-subnet", "set", "trigger-epoch")
WALLETS = Path.home() / ".bittensor" / "wallets"


def _keys(a: argparse.Namespace):
    """(hotkey, coldkey) keypairs from --uri or a btcli wallet."""
    if a.uri:
        key = dev_keypair(a.uri)
        return key, key
    if not a.wallet:
        raise SystemExit(f"{a.command}: give -w/--wallet NAME (a btcli wallet) or --uri //Name")
    import bittensor as bt

    wallet = bt.Wallet(a.wallet, a.hotkey, path=str(a.wallet_path))
    try:
        return wallet.hotkey, wallet.coldkey
    except Exception as e:  # noqa: BLE001 - a missing or locked key file, said plainly
        raise SystemExit(
            f"cannot open wallet {a.wallet!r} (hotkey {a.hotkey!r}) in {a.wallet_path}: {e}. "
            f"Create it with: btcli -y wallet create -w {a.wallet} -H {a.hotkey} --no-password "
            f"--wallet-path {a.wallet_path}"
        ) from None


def _params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"parameter {pair!r}: write NAME=VALUE (e.g. tempo=20)")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"parameter {name}: {value!r} is not a number") from None
    return out


async def _run(a: argparse.Namespace) -> dict:
    hot, cold = _keys(a) if a.command != "fund" else (None, None)
    if a.command == "fund":
        src = dev_keypair(a.from_uri)
        dest = a.to or _keys(a)[1].ss58_address
        async with DevChainClient(a.url, a.netuid, src, src) as c:
            await c.transfer(dest, a.tao)
            return {"funded": dest, "tao": a.tao, "balance": await c.balance(dest)}
    async with DevChainClient(a.url, a.netuid, hot, cold) as c:
        if a.command == "register":
            return {"hotkey": hot.ss58_address, "netuid": a.netuid, "uid": await c.register()}
        if a.command == "stake":
            await c.add_stake(a.tao)
            return {"hotkey": hot.ss58_address, "staked": a.tao}
        if a.command == "create-subnet":
            await c.create_subnet(a.netuid, owner_hotkey=hot.ss58_address, **_params(a.params))
            return {"netuid": a.netuid, "owner": cold.ss58_address}
        if a.command == "set":
            await c.sudo_set(**_params(a.params))
            return {"netuid": a.netuid, "params": (await c.subnet_info())["params"]}
        return {"netuid": a.netuid, "epoch_at": await c.trigger_epoch()}


def main(command: str, argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog=f"python -m template.chain.devchain {command}")
    p.add_argument("--url", default="http://127.0.0.1:9946")
    p.add_argument("--netuid", type=int, default=1)
    p.add_argument("-w", "--wallet", help="btcli wallet name (its coldkey pays/owns)")
    p.add_argument("-H", "--hotkey", default="default", help="hotkey name in the wallet")
    p.add_argument("--wallet-path", type=Path, default=WALLETS)
    p.add_argument("--uri", help="a dev account instead of a wallet, e.g. //Alice")
    if command in ("fund", "stake"):
        p.add_argument("--tao", type=float, required=True)
    if command == "fund":
        p.add_argument("--to", help="ss58 to fund (default: the -w wallet's coldkey)")
        p.add_argument("--to-wallet", dest="wallet", help="same as -w")
        p.add_argument("--from-uri", default="//Alice")
    if command in ("create-subnet", "set"):
        p.add_argument("params", nargs="*", help="NAME=VALUE hyperparameters")
    a = p.parse_args(argv)
    a.command = command
    if command == "fund" and not (a.to or a.wallet or a.uri):
        p.error("fund needs --to SS58, -w/--to-wallet NAME or --uri")
    try:
        print(json.dumps(asyncio.run(_run(a))))
    except ChainError as e:
        raise SystemExit(f"{command}: {e}") from None
