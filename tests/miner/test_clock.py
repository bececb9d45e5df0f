"""The block clock: follows the chain, and keeps counting from the clock during an outage."""

from __future__ import annotations

import asyncio
import time

import pytest

from template.chain.errors import ConnectionLostError
from template.miner.clock import BlockClock

pytestmark = pytest.mark.timeout(30)


class FakeChain:
    """Blocks every ``bt`` seconds from creation; ``down`` makes every call fail."""

    def __init__(self, bt: float = 0.05):
        self.bt, self.t0, self.down = bt, time.monotonic(), False

    async def block(self) -> int:
        if self.down:
            raise ConnectionLostError("down")
        return int((time.monotonic() - self.t0) / self.bt)

    async def wait_for_block(self, n: int, timeout: float | None = None) -> int:
        end = time.monotonic() + (timeout or 10)
        while time.monotonic() < end:
            b = await self.block()
            if b >= n:
                return b
            await asyncio.sleep(self.bt / 5)
        raise TimeoutError

    async def block_timestamp(self, n: int) -> float:
        return 1000.0 + n * self.bt


async def test_clock_measures_block_time_and_survives_an_outage():
    chain = FakeChain()
    clock = BlockClock(chain)
    await clock.start()
    assert 0.03 < clock.block_time < 0.1
    task = asyncio.create_task(clock.run())
    try:
        start = clock.block
        await asyncio.wait_for(clock.until(start + 5), 5)
        assert clock.block >= start + 5
        chain.down = True
        await asyncio.sleep(0.3)
        assert clock.outage
        frozen = clock.block
        # during the outage the clock extrapolates, so windows still end on time
        await asyncio.wait_for(clock.until(frozen + 20), 5)
        assert clock.block_now() >= frozen + 20 and clock.block == frozen
        chain.down = False
        await asyncio.sleep(0.3)
        assert not clock.outage and clock.block > frozen
        assert await clock.timestamp(3) == pytest.approx(1000.15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cancel_that_lands_as_a_block_arrives_stops_the_waiter():
    """On Python 3.11 ``asyncio.wait_for`` swallows a cancel when the awaited event fires in
    the same loop turn; the miner's sync task then never stopped and shutdown hung (CI)."""
    clock = BlockClock(FakeChain(bt=60.0))
    clock._observe(1)
    waiter = asyncio.create_task(clock.until(1000))
    await asyncio.sleep(0.01)  # parked on the block event
    clock._observe(2)  # the block arrives ...
    waiter.cancel()  # ... and the cancel lands in the same turn
    done, _ = await asyncio.wait({waiter}, timeout=1.0)
    assert waiter in done and waiter.cancelled()
