"""A window's H steps start from the model that holds the previous window's aggregate."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from template.hparams import WindowConfig
from template.miner.loop import Miner
from template.miner.trainer import WindowResult
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


def test_a_window_trained_without_the_previous_aggregate_is_counted_behind():
    m = _miner(block=56, applied=3)  # the leader missed its deadline for window 4
    m._train_run = 0.0

    def train_window(w, should_end):
        return WindowResult(w, {}, steps=2, train_seconds=0.5)

    m.trainer.train_window = train_window
    m._await_previous_aggregate = lambda w: Miner._await_previous_aggregate(m, w)
    late = asyncio.run(Miner._train(m, 5))
    assert (late.base, late.trained_behind) == (3, True)
    m.trainer.applied_through = 4
    on_time = asyncio.run(Miner._train(m, 5))
    assert (on_time.base, on_time.trained_behind) == (4, False)
    assert not WindowResult(5, {}, steps=0, base=3).trained_behind  # nothing trained
