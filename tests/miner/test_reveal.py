"""A miner reveals its seal key only after the upload cut-off, and not past the deadline."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from template.hparams import WindowConfig
from template.miner import seal_keys
from template.miner.loop import Miner
from template.protocol.windows import WindowClock
from template.storage import StorageError, keys

HK = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
CFG = WindowConfig(blocks_per_window=10, upload_blocks=2, grace_blocks=1, reveal_blocks=2)


class Clock:
    """Block ``block``; each ``until`` call waits for a test to move it."""

    def __init__(self, block: float):
        self.block, self.moved = block, asyncio.Event()

    def block_now(self) -> float:
        return self.block

    def seconds_until(self, block: int) -> float:
        return (block - self.block) * 1.0

    async def until(self, block: int) -> None:
        while self.block < block:
            self.moved.clear()
            await self.moved.wait()


class Bucket:
    def __init__(self, fail: bool = False):
        self.puts: list[tuple[str, bytes, float]] = []
        self.fail, self.clock = fail, None

    async def put_bytes(self, key: str, data: bytes, deadline=None) -> None:
        if self.fail:
            raise StorageError("endpoint down")
        self.puts.append((key, data, self.clock.block))


def _miner(block: float, bucket: Bucket):
    bucket.clock = clock = Clock(block)
    return SimpleNamespace(
        windows=WindowClock(CFG), clock=clock, bucket=bucket, hotkey=HK, settings=None
    )


def test_the_key_goes_out_only_from_the_block_after_the_cutoff():
    bucket = Bucket()
    m = _miner(block=45, bucket=bucket)  # window 4: cut-off at block 53, reveal from 54

    async def main():
        task = asyncio.create_task(Miner.reveal(m, 4, b"k" * 32))
        for block in (50, 53):
            m.clock.block = block
            m.clock.moved.set()
            await asyncio.sleep(0.05)
            assert not task.done() and not bucket.puts  # the cut-off block itself: still sealed
        m.clock.block = 54
        m.clock.moved.set()
        assert await asyncio.wait_for(task, 2)

    asyncio.run(main())
    assert bucket.puts == [(keys.reveal_key(HK, 4), b"k" * 32, 54)]


def test_no_key_after_the_reveal_deadline_and_a_failed_put_is_reported():
    late = Bucket()
    assert not asyncio.run(Miner.reveal(_miner(block=55, bucket=late), 4, b"k" * 32))
    assert late.puts == []  # block 55 is the reveal deadline of window 4
    assert not asyncio.run(Miner.reveal(_miner(block=54, bucket=Bucket(fail=True)), 4, b"k" * 32))


def test_a_restarted_miner_reveals_the_keys_it_kept_while_their_deadline_is_ahead(tmp_path):
    seal_keys.keep(tmp_path, 4, b"a" * 32)  # reveal deadline 55
    seal_keys.keep(tmp_path, 2, b"b" * 32)  # reveal deadline 35: too late
    (tmp_path / seal_keys.FOLDER / "x.key").write_bytes(b"c" * 32)  # not ours
    (tmp_path / seal_keys.FOLDER / "3.key").write_bytes(b"short")
    started = []
    m = _miner(block=54, bucket=Bucket())
    m.settings = SimpleNamespace(state_dir=tmp_path)
    m._start_reveal = lambda w, key: started.append((w, key))
    Miner._resume_reveals(m)
    assert started == [(4, b"a" * 32)]
    assert seal_keys.kept(tmp_path) == {4: b"a" * 32}  # the stale and foreign files are gone
    seal_keys.forget(tmp_path, 4)
    seal_keys.forget(tmp_path, 4)  # twice is fine
    assert seal_keys.kept(tmp_path) == {}
