"""Pre-evaluation checks of gather.py against a real local S3: missing, early, late, oversized,
wrong header, sealed but never revealed, a key that does not open it, and a good upload
passing."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import time
from datetime import UTC, datetime

import pytest
import torch

from template.hparams import WindowConfig, hparams_hash
from template.protocol.uploads import stored_objects
from template.protocol.windows import WindowClock
from template.signing import dev_keypair
from template.storage import ObjectNotFound, StorageClient, TransferTimeout, keys
from template.storage.local_server import start_local_s3
from template.training.compression import Compressor
from template.training.model import build_model
from template.training.wire import encode_upload, upload_size_cap
from template.validator import gather as gather_module
from template.validator.copies import CopyRules, find_clusters, make_print
from template.validator.gather import MISSING, fetch_uploads, uncommitted_miners
from template.validator.outcomes import RejectCode
from template.validator.replay import content_digest
from template.validator.watch import (
    MIN_ROUND_S,
    BlockPace,
    FirstSeenLog,
    WindowWatch,
    poll_round,
    round_interval,
    watch_uploads,
)

from .harness import small_hparams


async def put_sealed(client, blob: bytes, hotkey: str, window: int, *, reveal: bool = True):
    """Store ``blob`` as a miner does: sealed, then (``reveal``) its key; returns the key."""
    (up, sealed), (rk, key) = stored_objects(blob, window=window, hotkey=hotkey)
    await client.put_bytes(up, sealed)
    if reveal:
        await client.put_bytes(rk, key)
    return key


def random_delta():
    """(small preset, its parameter shapes, one compressed random delta of that model)."""
    hp = small_hparams()
    shapes = {n: tuple(p.shape) for n, p in build_model(hp.model).named_parameters()}
    return (
        hp,
        shapes,
        Compressor(hp.compression).compress({n: torch.randn(s) for n, s in shapes.items()}),
    )


def signed(hp, delta, key, uid: int, window: int = 7) -> bytes:
    """``delta`` as ``uid``'s signed upload of ``window``, claiming page 1."""
    return encode_upload(
        delta,
        window=window,
        uid=uid,
        hparams_hash=hparams_hash(hp),
        config=hp.compression,
        key=key,
        pages=[1],
    )


@pytest.fixture
async def client():
    """An empty bucket on a fresh local S3 server."""
    s3 = start_local_s3()
    bucket = StorageClient(s3.bucket("miners"))
    try:
        await bucket.create_bucket()
        yield bucket
    finally:
        await bucket.close()
        s3.stop()


class Directory:
    def __init__(self, clients):
        self.clients = clients

    def client(self, hotkey):
        return self.clients.get(hotkey)


async def test_pre_evaluation_checks(client, monkeypatch):
    hp, shapes, delta = random_delta()
    collector = []  # decoding runs with the cyclic collector paused, as the screening does
    real = gather_module.decode_checked
    monkeypatch.setattr(
        gather_module,
        "decode_checked",
        lambda *a, **k: collector.append(gc.isenabled()) or real(*a, **k),
    )
    ks = [dev_keypair(f"//Alice//g{i}") for i in range(9)]
    miners = [(i + 1, k.ss58_address) for i, k in enumerate(ks)]

    def upload(i, window=7, uid=None):
        return signed(hp, delta, ks[i], uid or i + 1, window)

    hk = [k.ss58_address for k in ks]
    await put_sealed(client, upload(0), hk[0], 7)
    await put_sealed(client, upload(1, window=6), hk[1], 7)
    await put_sealed(client, upload(2, uid=9), hk[2], 7)
    cap = upload_size_cap(shapes, hp.compression)
    await client.put_bytes(keys.upload_key(hk[3], 7), b"x" * (cap + 1))
    # uid 5 uploads nothing; uid 6 never reveals; uid 7 reveals another key; uid 8 stores
    # its signed upload in the clear; uid 9 seals for hotkey 0's folder name
    await put_sealed(client, upload(5), hk[5], 7, reveal=False)
    await put_sealed(client, upload(6), hk[6], 7, reveal=False)
    await client.put_bytes(keys.reveal_key(hk[6], 7), b"k" * 32)
    await client.put_bytes(keys.upload_key(hk[7], 7), upload(7))
    await client.put_bytes(keys.reveal_key(hk[7], 7), b"k" * 32)
    (_, sealed), (_, key) = stored_objects(upload(8), window=7, hotkey=hk[0])
    await client.put_bytes(keys.upload_key(hk[8], 7), sealed)
    await client.put_bytes(keys.reveal_key(hk[8], 7), key)
    directory = Directory({k.ss58_address: client for k in ks})
    now = time.time()

    async def run(open_ts, cutoff_ts):
        got = await fetch_uploads(
            directory,
            miners,
            7,
            hp,
            shapes,
            open_ts=open_ts,
            cutoff_ts=cutoff_ts,
            skew=1.0,
            concurrency=4,
            time_budget=20,
        )
        return {c.uid: c for c in got}

    c = await run(now - 60, now + 60)
    assert collector and not any(collector) and gc.isenabled()
    assert c[1].ok and c[1].upload.uid == 1 and c[1].blob
    assert c[2].reason.code is RejectCode.WRONG_WINDOW and "window" in str(c[2].reason)
    assert c[3].reason.code is RejectCode.WRONG_FIELD and "uid" in str(c[3].reason)
    assert c[4].reason.code is RejectCode.OVERSIZE and c[4].blob is None
    assert c[5].reason == MISSING and c[5].reason.missing
    assert c[6].reason.code is RejectCode.UNREVEALED and c[6].blob is None
    assert c[7].reason.code is RejectCode.BAD_SEAL and "key hash" in str(c[7].reason)
    assert c[8].reason.code is RejectCode.BAD_SEAL and "not a sealed" in str(c[8].reason)
    assert c[9].reason.code is RejectCode.BAD_SEAL and "another" in str(c[9].reason)
    c = await run(now + 60, now + 120)
    assert c[1].reason.code is RejectCode.EARLY
    c = await run(now - 120, now - 60)  # not watched: LastModified decides
    assert c[1].reason.code is RejectCode.LATE


class BackdatingClient:
    """A copier's storage: reports a LastModified far in the past for every object."""

    def __init__(self, inner, when: float):
        self.inner, self.when = inner, when

    async def head(self, key, deadline=None):
        info = await self.inner.head(key, deadline=deadline)
        return dataclasses.replace(info, last_modified=datetime.fromtimestamp(self.when, UTC))

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_watched_window_orders_by_the_validators_clock_not_last_modified(client):
    """The original is seen first by the validator's own polling; the copier's storage
    back-dates its LastModified; the copy is the one found provably later, the original
    stands; content appearing only after the cut-off round, or first seen once the seal keys
    could be out, is late."""
    hp, shapes, delta = random_delta()
    ks = [dev_keypair(f"//Alice//w{i}") for i in range(4)]
    miners = [(i + 1, k.ss58_address) for i, k in enumerate(ks)]
    now = time.time()
    directory = Directory(
        {
            ks[0].ss58_address: client,
            ks[1].ss58_address: BackdatingClient(client, now - 30),
            ks[2].ss58_address: client,
            ks[3].ss58_address: client,
        }
    )

    def upload(i):
        return signed(hp, delta, ks[i], i + 1)

    hotkeys = [k.ss58_address for k in ks]
    sealed = {}

    async def put(i):
        sealed[i] = await put_sealed(client, upload(i), hotkeys[i], 7, reveal=False)

    ww = WindowWatch()
    await poll_round(ww, directory, hotkeys, 7, concurrency=4)  # nothing there yet
    await put(0)
    await poll_round(ww, directory, hotkeys, 7, concurrency=4)  # the original
    await poll_round(ww, directory, hotkeys, 7, concurrency=4)  # the copier still absent
    await put(1)  # the copy (as if the seal had leaked)
    await poll_round(ww, directory, hotkeys, 7, concurrency=4)
    ww.cutoff_seen = time.time()
    await poll_round(ww, directory, hotkeys, 7, concurrency=4)
    await put(3)  # in time by its LastModified, but only after the watcher saw keys could be out
    ww.keys_out_seen = time.time()
    await poll_round(ww, directory, hotkeys, 7, concurrency=4)
    ww.closed = True
    await put(2)  # too late
    for i, key in sealed.items():  # the reveals, after the cut-off
        await client.put_bytes(keys.reveal_key(hotkeys[i], 7), key)

    got = await fetch_uploads(
        directory,
        miners,
        7,
        hp,
        shapes,
        open_ts=now - 60,
        cutoff_ts=now + 60,
        skew=1.0,
        concurrency=4,
        time_budget=20,
        watch=ww,
    )
    c = {x.uid: x for x in got}
    assert c[1].ok and c[2].ok
    assert c[2].last_modified < c[1].last_modified  # the copier's clock claims priority
    assert c[1].first_seen < c[2].sighting.absent_before  # the validator's clock says no
    assert c[3].reason.code is RejectCode.LATE and "not seen" in str(c[3].reason)
    assert c[4].reason.code is RejectCode.LATE and "keys could be out" in str(c[4].reason)
    rules = CopyRules()
    prints = [make_print(x.uid, content_digest(x.upload), x.upload, rules, 1) for x in (c[1], c[2])]
    sightings = {x.uid: x.sighting for x in (c[1], c[2])}
    (cluster,) = find_clusters(prints, sightings, rules)
    assert cluster.uids == (1, 2) and set(cluster.rejections()) == {2}


class StubChain:
    def __init__(self, block: int):
        self.now = block

    async def block(self) -> int:
        return self.now


class EmptyBucket:
    async def head(self, key, deadline=None):
        raise ObjectNotFound(key)


async def test_the_watcher_notes_when_it_first_looked_after_the_keys_could_be_out():
    """Window 4 (10-block windows): cut-off 53, reveal from 54. A watcher that saw block 53
    closes with no such note; one that first looked at block 54 notes it, so what it sees
    first in that round is late (gather's rule above)."""
    clock = WindowClock(
        WindowConfig(blocks_per_window=10, upload_blocks=2, grace_blocks=1, reveal_blocks=2)
    )
    hk = dev_keypair("//Alice//watch").ss58_address
    directory = Directory({hk: EmptyBucket()})
    for last in (53, 54):
        chain, log = StubChain(51), FirstSeenLog()
        task = asyncio.create_task(
            watch_uploads(log, chain, clock, directory, lambda: [(1, hk)], interval=0.01)
        )
        try:
            while 4 not in log.windows or not log.windows[4].last_sent:
                await asyncio.sleep(0.01)  # polling window 4 before its cut-off
            chain.now = last
            assert await log.wait_closed(4, timeout=5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        ww = log.get(4)
        assert ww.cutoff_seen is not None
        assert (ww.keys_out_seen is not None) == (last == 54)


class TickingChain:
    """A chain that makes a block every ``seconds`` (real time) from block ``start``."""

    def __init__(self, start: int, seconds: float):
        self.start, self.seconds, self.t0 = start, seconds, time.monotonic()

    async def block(self) -> int:
        return self.start + int((time.monotonic() - self.t0) / self.seconds)


async def test_the_watcher_rounds_fall_in_the_cut_off_block_on_fast_blocks():
    """Blocks of 0.4 s with a 2 s interval (the local subnet's 1 s blocks): rounds come every
    quarter block while uploads are due, so the closing round falls in the cut-off block, not
    at the reveal start (where an honest upload of the grace block would be first seen "once
    seal keys could be out"). Slow blocks keep the interval."""
    assert round_interval(1.0, 12.0) == 1.0 and round_interval(1.0, 0.3) == MIN_ROUND_S
    assert round_interval(1.0, 2.0) == 0.5 and round_interval(1.0, None) == MIN_ROUND_S
    assert round_interval(0.05, 12.0) == round_interval(0.05, None) == 0.05  # never slower
    clock = WindowClock(
        WindowConfig(blocks_per_window=10, upload_blocks=2, grace_blocks=1, reveal_blocks=2)
    )
    hk = dev_keypair("//Alice//watch").ss58_address
    directory = Directory({hk: EmptyBucket()})
    chain, log = TickingChain(50, 0.4), FirstSeenLog()  # window 4: cut-off 53, reveal 54
    task = asyncio.create_task(
        watch_uploads(log, chain, clock, directory, lambda: [(1, hk)], interval=2.0)
    )
    try:
        while 4 not in log.windows:
            await asyncio.sleep(0.01)
        assert await log.wait_closed(4, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ww = log.get(4)
    assert ww.closed and ww.cutoff_seen is not None and ww.keys_out_seen is None
    pace = BlockPace()
    for block, now in ((7, 0.0), (7, 0.5), (9, 2.0), (10, 3.0)):
        pace.observe(block, now)
    assert pace.seconds == pytest.approx(0.8 * 1.0 + 0.2 * 1.0)


async def test_gather_waits_for_a_key_revealed_after_its_first_look(client):
    hp, shapes, delta = random_delta()
    key = dev_keypair("//Alice//r0")
    hk = key.ss58_address
    blob = signed(hp, delta, key, 1)
    seal_key = await put_sealed(client, blob, hk, 7, reveal=False)
    looks = []

    async def wait(more: bool) -> bool:  # the miner reveals between the validator's looks
        looks.append(1)
        await client.put_bytes(keys.reveal_key(hk, 7), seal_key)
        return more

    now = time.time()
    for more in (True, False):  # False: the key landed as the deadline block was seen
        looks.clear()
        (c,) = await fetch_uploads(
            Directory({hk: client}), [(1, hk)], 7, hp, shapes, open_ts=now - 60,
            cutoff_ts=now + 60, skew=1.0, concurrency=2, time_budget=20,
            reveal_wait=functools.partial(wait, more),
        )  # fmt: skip
        assert c.ok and c.blob == blob and looks == [1]
        await client.delete([keys.reveal_key(hk, 7)])


class SlowPeer:
    """A bucket whose upload GET takes ``get_s`` seconds and whose key GET never answers
    (``hang_keys``): it holds every request until the caller's deadline, then times out."""

    def __init__(self, client, *, get_s=0.0, hang_keys=False):
        self.inner, self.get_s, self.hang_keys = client, get_s, hang_keys

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def get_bytes(self, key, max_bytes, expected_sha256=None, deadline=None):
        if f"/{keys.REVEALS}/" not in key:
            await asyncio.sleep(self.get_s)
        elif self.hang_keys:
            await asyncio.sleep(max(0.0, (deadline or time.monotonic() + 60) - time.monotonic()))
            raise TransferTimeout(f"GET {key}: no answer")
        return await self.inner.get_bytes(key, max_bytes, expected_sha256, deadline=deadline)


async def test_key_wait_survives_slow_downloads_and_a_peer_that_never_answers(client, monkeypatch):
    """The wait for seal keys ends at the reveal deadline, not when downloads used up the
    gather budget, and a peer whose key requests hang cannot use up the honest miners' looks."""
    monkeypatch.setattr("template.validator.gather.KEY_LOOK_S", 0.3)
    hp, shapes, delta = random_delta()
    ks = [dev_keypair(f"//Alice//slow{i}") for i in range(2)]
    hk = [k.ss58_address for k in ks]
    blobs = [signed(hp, delta, ks[i], i + 1) for i in range(2)]
    honest_key = await put_sealed(client, blobs[0], hk[0], 7, reveal=False)
    await put_sealed(client, blobs[1], hk[1], 7)  # revealed, but its bucket will not answer
    now = time.time()
    for peers in (
        {hk[0]: SlowPeer(client, get_s=1.5)},  # the download takes most of the budget
        {hk[0]: client, hk[1]: SlowPeer(client, hang_keys=True)},
    ):
        await client.delete([keys.reveal_key(hk[0], 7)])

        async def wait() -> bool:  # the honest key lands 0.8 s after the first look
            await asyncio.sleep(0.8)
            await client.put_bytes(keys.reveal_key(hk[0], 7), honest_key)
            return True

        got = await fetch_uploads(
            Directory(peers), [(i + 1, h) for i, h in enumerate(hk) if h in peers], 7, hp,
            shapes, open_ts=now - 60, cutoff_ts=now + 60, skew=1.0, concurrency=2,
            time_budget=2.0, reveal_wait=wait,
        )  # fmt: skip
        c = {x.uid: x for x in got}
        assert c[1].ok and c[1].blob == blobs[0]
        if 2 in c:
            assert c[2].reason.code is RejectCode.UNREVEALED


def test_scored_miners_without_a_commitment_are_missing():
    """A scored miner absent from the miners list (commitment dropped or garbled) is MISSING;
    a uid re-registered under another hotkey, a validator and this validator are not."""
    scored = {1: "a", 2: "b", 3: "c", 4: "d", 5: "me"}
    registered = {1: "a", 2: "b", 3: "new", 4: "d", 5: "me"}
    got = uncommitted_miners(scored, registered, listed={1}, skip={"d", "me"})
    assert [(c.uid, c.hotkey, c.reason) for c in got] == [(2, "b", MISSING)]
