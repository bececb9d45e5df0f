"""A window's H steps start from the model that holds the previous window's aggregate."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from template.hparams import WindowConfig
from template.miner.loop import Miner
from template.protocol.windows import WindowClock


class FakeClock:
    def __init__(self, block: float):
        self.block = block

    def block_now(self) -> float:
        return self.block

    def seconds_until(self, block: int) -> float:
        return 0.0


def _miner(block: float, applied: int):
    cfg = WindowConfig(blocks_per_window=10, upload_blocks=2, grace_blocks=1, publish_blocks=6)
    return SimpleNamespace(
        windows=WindowClock(cfg),
        trainer=SimpleNamespace(applied_through=applied),
        clock=FakeClock(block),
        _stop=asyncio.Event(),
    )


def test_waits_for_the_previous_aggregate_then_starts():
    m = _miner(block=50, applied=3)  # window 5 starts; aggregate of 4 not applied yet

    async def main():
        task = asyncio.create_task(Miner._await_previous_aggregate(m, 5))
        await asyncio.sleep(0.2)
        assert not task.done()  # still waiting: the aggregate is not in yet
        m.trainer.applied_through = 4
        await asyncio.wait_for(task, 2)

    asyncio.run(main())


def test_starts_without_it_at_the_publish_deadline():
    m = _miner(block=50, applied=3)

    async def main():
        task = asyncio.create_task(Miner._await_previous_aggregate(m, 5))
        await asyncio.sleep(0.2)
        assert not task.done()
        m.clock.block = 56  # end(4) + publish_blocks: the leader is late, train anyway
        await asyncio.wait_for(task, 2)

    asyncio.run(main())


def test_no_wait_when_already_applied_or_stopping():
    asyncio.run(asyncio.wait_for(Miner._await_previous_aggregate(_miner(50, 4), 5), 1))
    m = _miner(50, 3)
    m._stop.set()
    asyncio.run(asyncio.wait_for(Miner._await_previous_aggregate(m, 5), 1))
