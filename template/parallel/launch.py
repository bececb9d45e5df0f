"""Start N ranks of a neuron on this machine, as ``torchrun --nproc_per_node N`` does for one
node, with a stop that suits a service: SIGINT/SIGTERM go to rank 0 (the other ranks ignore
them and leave when rank 0 releases them), and the exit status is rank 0's.

    python -m template.parallel.launch --ranks 2 -- -m template.commands.miner --device cpu ...

The local subnet uses it for ``--miner.ranks``; on rented GPU nodes ``torchrun`` works as well.
If any rank dies with an error, the others are stopped (one rank cannot go on alone).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

GRACE_S = 30.0  # after rank 0 exits, how long the other ranks get before SIGKILL


def free_port() -> int:
    """A TCP port free on this machine now (the rendezvous port; no torch import here, so the
    launcher starts its ranks at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return env


def launch(ranks: int, command: list[str], port: int = 0) -> int:
    port = port or free_port()
    procs = [
        subprocess.Popen([sys.executable, *command], env=rank_env(r, ranks, port))
        for r in range(ranks)
    ]

    def forward(sig, _frame) -> None:
        if procs[0].poll() is None:
            procs[0].send_signal(sig)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _wait(procs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(procs: list[subprocess.Popen]) -> int:
    """Rank 0's exit status, after the others left (or were killed ``GRACE_S`` later)."""
    failed = False
    while procs[0].poll() is None:
        failed = any(p.poll() not in (None, 0) for p in procs[1:])
        if failed:  # one rank cannot go on alone
            procs[0].terminate()
            break
        time.sleep(0.2)
    rc = procs[0].wait()
    rc = 128 - rc if rc < 0 else rc  # killed by a signal: the shell's 128 + N
    if failed and rc == 0:
        rc = 1
    deadline = time.monotonic() + GRACE_S
    for p in procs[1:]:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m template.parallel.launch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ranks", type=int, required=True, help="processes (one per GPU)")
    p.add_argument("--port", type=int, default=0, help="rendezvous port (0: a free one)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then python's arguments")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.ranks < 1 or not command:
        p.error("need --ranks >= 1 and a command after --")
    return launch(args.ranks, command, args.port)


if __name__ == "__main__":
    sys.exit(main())
