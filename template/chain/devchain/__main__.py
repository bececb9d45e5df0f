"""Run the dev chain node, ``show`` the state of a running one, or act on it as btcli would.

python -m template.chain.devchain --port 9946 --db ./devchain.sqlite --block-time 0.5
python -m template.chain.devchain show --url http://127.0.0.1:9946 neurons
python -m template.chain.devchain fund|register|stake|create-subnet|set|trigger-epoch --help
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import fields

from .params import Genesis, SubnetHyperparams


def _parse_serve(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m template.chain.devchain",
        description="Embedded dev chain. Other commands: show, fund, register, stake, "
        "create-subnet, set, trigger-epoch (each with --help).",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (keep it loopback)")
    p.add_argument("--port", type=int, default=9946)
    p.add_argument("--db", default="./devchain.sqlite", help="SQLite state file")
    p.add_argument("--block-time", type=float, default=0.5, help="seconds per block (>= 0.1)")
    p.add_argument("--log-level", default="INFO")
    g = p.add_argument_group("genesis (used only when --db is new)")
    g.add_argument("--netuid", type=int, default=1)
    g.add_argument("--dev-balance", type=float, default=1_000_000.0)
    for f in fields(SubnetHyperparams):
        kind = int if f.type in ("int", int) else float
        g.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    return p.parse_args(argv)


async def _serve(a: argparse.Namespace) -> None:
    from .server import DevChainServer

    overrides = {f.name: getattr(a, f.name) for f in fields(SubnetHyperparams)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    genesis = Genesis.from_overrides(netuid=a.netuid, dev_balance=a.dev_balance, **overrides)
    server = DevChainServer(a.db, genesis, a.block_time)
    await server.start(a.host, a.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "show":
        from .cli import main as show

        show(argv[1:])
        return
    from .tx_cli import COMMANDS

    if argv and argv[0] in COMMANDS:
        from .tx_cli import main as act

        act(argv[0], argv[1:])
        return
    a = _parse_serve(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning("binding %s: the dev chain is for loopback", a.host)
    try:
        asyncio.run(_serve(a))
    except (ValueError, OSError) as e:
        raise SystemExit(f"dev chain: {e}") from None


if __name__ == "__main__":
    main()
