"""The chain's block height as the miner sees it, kept fresh by one background task.

Training polls ``block_now()`` between steps (from its thread); coroutines ``await until(n)``.
When the chain cannot be reached the clock keeps counting from the last observed block and
the measured block time, so a chain outage does not stretch a window: training still stops
and uploads still go out when the window should end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from template.chain.protocol import Chain

logger = logging.getLogger(__name__)

STALE_BLOCKS = 3.0  # during an outage, extrapolate once this many block times passed


class BlockClock:
    def __init__(self, chain: Chain, block_time: float = 12.0):
        self.chain = chain
        self.block = -1
        self.block_time = block_time
        self._seen_at = time.monotonic()
        self._changed = asyncio.Event()
        self._timestamps: dict[int, float] = {}
        self.outage = False

    def _observe(self, block: int) -> None:
        now = time.monotonic()
        if self.block >= 0 and block > self.block:
            per_block = (now - self._seen_at) / (block - self.block)
            self.block_time = 0.8 * self.block_time + 0.2 * per_block
        if block != self.block:
            self.block, self._seen_at = block, now
            self._changed.set()
            self._changed = asyncio.Event()

    async def start(self) -> int:
        """Read the current block and measure the block time over two whole blocks."""
        first = await self.chain.wait_for_block(await self.chain.block() + 1, timeout=60.0)
        t0 = time.monotonic()  # aligned to a block boundary now
        b = await self.chain.wait_for_block(first + 2, timeout=60.0)
        self.block_time = max(1e-3, (time.monotonic() - t0) / max(1, b - first))
        self.block = -1
        self._observe(b)
        return self.block

    async def refresh(self) -> None:
        """Read the block now (best effort)."""
        with contextlib.suppress(Exception):
            self._observe(await self.chain.block())

    async def run(self) -> None:
        """Follow the chain forever (cancel to stop); outages are logged once, not raised."""
        while True:
            try:
                b = await self.chain.wait_for_block(
                    self.block + 1, timeout=max(2.0, 5 * self.block_time)
                )
                self._observe(b)
                if self.outage:
                    logger.info("chain reachable again at block %d", b)
                    self.outage = False
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                continue
            except Exception as e:  # noqa: BLE001 - an outage must not stop the miner
                if not self.outage:
                    logger.warning("chain unreachable (%s); estimating blocks from the clock", e)
                    self.outage = True
                await asyncio.sleep(min(2.0, max(0.1, self.block_time)))

    def block_now(self) -> float:
        """The observed block; while the chain is unreachable, an estimate from the clock."""
        since = time.monotonic() - self._seen_at
        if not self.outage or since < STALE_BLOCKS * self.block_time:
            return float(self.block)
        return self.block + since / self.block_time

    def seconds_until(self, block: int) -> float:
        """Estimated seconds until ``block`` starts (negative when past)."""
        since = time.monotonic() - self._seen_at
        return (block - self.block) * self.block_time - since

    async def until(self, block: int) -> None:
        """Return once ``block`` is reached (or, during an outage, estimated to be)."""
        while self.block_now() < block:
            wait = max(0.05, min(self.seconds_until(block), 5.0))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # lands as the event fires, and the sync task then never stops
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()

    async def timestamp(self, block: int) -> float | None:
        """The chain's timestamp of ``block`` (cached), or None when it cannot be read."""
        if block in self._timestamps:
            return self._timestamps[block]
        try:
            ts = await self.chain.block_timestamp(block)
        except Exception as e:  # noqa: BLE001
            logger.debug("no timestamp for block %d: %s", block, e)
            return None
        self._timestamps[block] = ts
        return ts
