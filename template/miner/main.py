"""Run the miner from parsed flags: build, install signal handlers, run, close."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from .loop import arm_shutdown_watchdog
from .startup import build_miner, close_all

logger = logging.getLogger(__name__)


async def run_miner(args: argparse.Namespace) -> None:
    miner, closers = await build_miner(args)
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        arm_shutdown_watchdog()
        miner.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, on_signal)
    try:
        await miner.run()
    finally:
        await close_all(closers)
    logger.info("miner stopped")
