"""The neurons' entry points: parse flags, set up logging, run, and turn start-up errors into
one line on stderr with exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from template.training.offload import share_main_arena

from .errors import StartupError
from .logs import setup_logging


def run_neuron(
    role: str,
    build_parser: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace], Awaitable[None]],
    argv: list[str] | None = None,
) -> int:
    share_main_arena()  # before any thread: worker threads' tensors come from the main arena
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        asyncio.run(run(args))
    except StartupError as e:
        print(f"{role}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
