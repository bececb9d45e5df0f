"""State that faults must not lose: a miner's error feedback when its upload fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import torch

from template.hparams import load_hparams
from template.miner import seal_keys
from template.miner.loop import Miner, MinerSettings, Stats
from template.miner.state import Position
from template.miner.trainer import WindowResult
from template.protocol.windows import WindowClock
from template.signing import dev_keypair
from template.storage import ObjectInfo, ObjectNotFound, TransientStorageError
from template.training.compression import Compressor

HP = load_hparams("tiny")


class Bucket:
    """``fail``: the PUT raises; ``stored``: the object is there anyway (``None``: the bucket
    cannot be asked either); ``stamp``: its LastModified."""

    def __init__(self, fail: bool, stored: bool | None = False, stamp: float = 1000.0):
        self.fail, self.puts, self.stored, self.stamp, self.heads = fail, 0, stored, stamp, 0

    async def put_bytes(self, key, blob, deadline=None):
        self.puts += 1
        if self.fail:
            raise TransientStorageError("PUT x: connection error after 4 attempt(s)")
        return "etag"

    async def head(self, key, deadline=None):
        self.heads += 1
        if self.stored is None:
            raise TransientStorageError("HEAD x: timed out")
        if not self.stored:
            raise ObjectNotFound(f"HEAD {key}: not found")
        return ObjectInfo(key, 10, datetime.fromtimestamp(self.stamp, UTC), "e")


class Clock:
    block = 0
    block_time = 0.05

    def seconds_until(self, block):
        return 0.2

    def block_now(self):
        return 0

    async def until(self, block):
        return None

    async def timestamp(self, block):  # window 0 opens at 990, its cut-off block is at 1010
        return 990.0 if block == 0 else 1010.0


def make_miner(tmp_path: Path, bucket: Bucket, error: dict[str, torch.Tensor]) -> Miner:
    m = Miner.__new__(Miner)  # only what finish_window and _upload touch
    m.settings = m.s = MinerSettings(HP, uid=1, state_dir=tmp_path)
    m.key, m.bucket, m.clock = dev_keypair("//Bob"), bucket, Clock()
    m.windows, m.run_hash, m.stats = WindowClock(HP.window), "h" * 64, Stats()
    m.position = Position(hparams_hash="h" * 64, hotkey="hk", applied_through=0)
    m.compressor = Compressor(HP.compression)
    m.compressor.load_state_dict(error)
    m._seal, m._reveals, m._news = None, set(), set()

    async def nothing():
        return None

    m.save, m.report = nothing, lambda: None
    return m


def window(delta: dict[str, torch.Tensor]) -> WindowResult:
    return WindowResult(window=0, delta=delta, pages=[0], steps=1, tokens=10, train_seconds=1.0)


def test_failed_upload_keeps_its_part_of_the_error_feedback(tmp_path):
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (64, 32), "b": (128,)}
    e0 = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    delta = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    accumulated = {n: e0[n] * HP.compression.ef_beta + delta[n] for n in shapes}

    failed = make_miner(tmp_path, Bucket(fail=True), e0)
    asyncio.run(failed.finish_window(window(delta)))
    assert failed.bucket.puts == 1 and failed.position.uploads_missed == 1
    assert seal_keys.kept(tmp_path) == {}  # the key of an upload that never landed is dropped
    for n in shapes:  # nothing was sent, so nothing left the buffer
        torch.testing.assert_close(failed.compressor.error[n], accumulated[n])

    sent = make_miner(tmp_path, Bucket(fail=False), e0)
    asyncio.run(sent.finish_window(window(delta)))
    assert sent.position.uploads_done == 1
    moved = sum(float((accumulated[n] - sent.compressor.error[n]).abs().sum()) for n in shapes)
    assert moved > 0  # a landed upload does take its part out (the test can tell the two apart)

    # a PUT that timed out but was stored in the upload span (a paused bucket answering late)
    # reached the network: putting it back would send the delta twice (harmful to validators)
    for bucket, done, kept_out in [
        (Bucket(fail=True, stored=True), True, True),
        (Bucket(fail=True, stored=None), False, True),  # cannot tell: never send a delta twice
        (Bucket(fail=True, stored=True, stamp=1020.0), False, False),  # stored after the cut-off
    ]:
        m = make_miner(tmp_path, bucket, e0)
        asyncio.run(m.finish_window(window(delta)))
        assert bucket.heads >= 1 and m.position.uploads_done == int(done)
        for n in shapes:
            assert torch.equal(m.compressor.error[n], sent.compressor.error[n]) == kept_out, n

    no_steps = make_miner(tmp_path, Bucket(fail=False), e0)
    no_steps._sent = (0, None)  # a stale record from another window is never put back
    asyncio.run(no_steps.finish_window(WindowResult(window=1, delta={})))
    for n in shapes:
        torch.testing.assert_close(no_steps.compressor.error[n], e0[n])


STUCK_MINER = """
import sys, time, threading
sys.path.insert(0, {root!r})
import template.miner.loop as loop
loop.STOP_LIMIT_S = 1.0
m = loop.Miner.__new__(loop.Miner)
m._stop = __import__("asyncio").Event()
m.trainer = type("T", (), {{"stop": threading.Event()}})()
loop.arm_shutdown_watchdog()  # what the entry point's signal handler does
m.request_stop()
print("stop requested", flush=True)
time.sleep(60)  # a shutdown stuck on something: the watchdog must end it
"""


def test_a_miner_stuck_after_sigterm_exits_within_the_limit_and_says_where(tmp_path):
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", STUCK_MINER.format(root=root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "stop requested" in proc.stdout
    assert proc.returncode != 0  # cut short, not a clean exit after 60 s
    assert "time.sleep(60)" in proc.stderr or "<string>" in proc.stderr  # the stack dump
    assert "Thread" in proc.stderr


def test_a_leader_past_its_followers_deadline_publishes_no_list():
    """Followers wait for window w's list until end(w + 1), then apply the bootstrap rule. A
    leader that is later (just restarted, or slow) must apply that rule too: its own list would
    split the subnet and make the next window's honest uploads look out of sync."""
    from template.validator.sync import LATE_MARGIN_BLOCKS, ValidatorSync

    class Chain:
        block_now = 0

        async def block(self):
            return self.block_now

    v = ValidatorSync.__new__(ValidatorSync)
    v.clock, v.chain = WindowClock(HP.window), Chain()
    w = 7
    deadline = v.clock.end(w + 1)
    for block, late in [
        (v.clock.upload_cutoff(w), False),
        (deadline - LATE_MARGIN_BLOCKS - 1, False),
        (deadline - LATE_MARGIN_BLOCKS, True),
        (deadline + 30, True),
    ]:
        v.chain.block_now = block
        assert asyncio.run(v._too_late_to_lead(w)) is late, block
