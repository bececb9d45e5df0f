"""Fetch a window's uploads and run the checks that come before any comparison.

Per miner, in order: a bucket commitment exists; HEAD the object (missing?); its size is
under the cap (oversized objects are never downloaded); it is on time; then the sealed body is
downloaded (bounded parallelism, time budget), opened with the key the miner reveals after
the cut-off (polled until the reveal deadline; training/seal.py) and strictly decoded
(``verify``).

On time, by the validator's own clock when its watcher (``watch.py``) covered the window:
the content must have been seen before the cut-off, unchanged since (same ETag, and the
body's MD5 when the ETag is one), not provably first readable after the cut-off, and not
first seen once seal keys could be out (a copy made from a revealed upload). Only
when the window was not watched (e.g. the validator started during it) does the miner's
``LastModified`` decide, against the block timestamps. ``LastModified`` before the window
opened is always ``EARLY`` (a lie there only hurts the liar).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from template.hparams import HParams
from template.protocol.directory import PeerDirectory
from template.protocol.uploads import reveal_of
from template.protocol.windows import upload_time_verdict
from template.storage import GetRequest, ObjectInfo, ObjectNotFound, StorageError, gather, keys
from template.training.offload import in_worker
from template.training.seal import SealError, unseal_upload
from template.training.wire import Upload, upload_size_cap

from .outcomes import MISSING, RejectCode, Rejection
from .screen import collector_paused
from .verify import decode_checked
from .watch import Sighting, WindowWatch

logger = logging.getLogger(__name__)

__all__ = ["MISSING", "Candidate", "fetch_uploads", "uncommitted_miners"]


@dataclass
class Candidate:
    """One miner's upload for a window and what the pre-evaluation checks said."""

    uid: int
    hotkey: str
    blob: bytes | None = None
    last_modified: float | None = None  # the miner's storage clock: never used for priority
    etag: str | None = None
    sighting: Sighting | None = None  # the validator's own first sight of this content
    upload: Upload | None = None
    reason: Rejection | None = None  # None: passed; MISSING or why it was rejected

    @property
    def ok(self) -> bool:
        return self.reason is None and self.upload is not None

    @property
    def first_seen(self) -> float | None:
        return None if self.sighting is None else self.sighting.first_seen


def uncommitted_miners(
    scored: Mapping[int, str],
    registered: Mapping[int, str],
    listed: Collection[int],
    skip: Collection[str],
) -> list[Candidate]:
    """MISSING candidates for the scored miners no longer listed as miners (their bucket
    commitment dropped, replaced by garbage or made private): without them such a score froze
    and kept its weight for ever. ``scored``: uid -> hotkey of every score held;
    ``registered``: the metagraph's uid -> hotkey; ``skip``: hotkeys that are never miners
    (validators, this validator). A uid whose hotkey changed is the scoreboard's to reset."""
    return [
        Candidate(uid, hotkey, reason=MISSING)
        for uid, hotkey in sorted(scored.items())
        if uid not in listed and registered.get(uid) == hotkey and hotkey not in skip
    ]


def _is_md5(etag: str | None) -> bool:
    return etag is not None and len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def timing_rejection(
    c: Candidate,
    info: ObjectInfo,
    watch: WindowWatch | None,
    *,
    open_ts: float,
    cutoff_ts: float,
    skew: float,
) -> Rejection | None:
    """EARLY/LATE, or None (see the module docstring for the rules)."""
    lm = info.last_modified_unix
    if upload_time_verdict(lm, open_ts, cutoff_ts, skew=skew) == "early":
        return Rejection(RejectCode.EARLY, f"LastModified {lm:.0f} is before the window opened")
    if watch is None or not watch.closed or c.hotkey not in watch.last_sent:
        # not watched, or its storage never answered the watcher: the stored clock decides
        if upload_time_verdict(lm, open_ts, cutoff_ts, skew=skew) == "late":
            return Rejection(RejectCode.LATE, f"LastModified {lm:.0f} (window not watched)")
        return None
    seen = watch.sightings.get(c.hotkey)
    if seen is None:
        return Rejection(RejectCode.LATE, "not seen by the validator before the upload cut-off")
    if seen.etag != (info.etag or f"size:{info.size}"):
        return Rejection(RejectCode.LATE, "content changed after the upload cut-off")
    cut = watch.cutoff_seen
    if cut is not None and seen.absent_before is not None and seen.absent_before > cut + skew:
        return Rejection(RejectCode.LATE, "first readable after the upload cut-off")
    keys_out = watch.keys_out_seen
    if keys_out is not None and seen.first_seen >= keys_out:
        return Rejection(RejectCode.LATE, "first seen once seal keys could be out")
    c.sighting = seen
    return None


async def fetch_uploads(
    directory: PeerDirectory,
    miners: Sequence[tuple[int, str]],
    window: int,
    hp: HParams,
    shapes: dict[str, tuple[int, ...]],
    *,
    open_ts: float,
    cutoff_ts: float,
    skew: float,
    concurrency: int,
    time_budget: float,
    watch: WindowWatch | None = None,
    reveal_wait: RevealWait | None = None,
) -> list[Candidate]:
    """Every miner's candidate for ``window`` (never raises for a bad peer).

    Seal keys are polled until ``reveal_wait`` says to stop (default: one look).
    """
    cap = upload_size_cap(shapes, hp.compression)
    deadline = time.monotonic() + time_budget
    sem = asyncio.Semaphore(concurrency)
    cands = [Candidate(uid, hk) for uid, hk in miners]

    async def head(c: Candidate) -> None:
        client = directory.client(c.hotkey)
        if client is None:
            c.reason = MISSING
            return
        async with sem:
            try:
                info = await client.head(keys.upload_key(c.hotkey, window), deadline=deadline)
            except ObjectNotFound:
                c.reason = MISSING
                return
            except StorageError as e:
                c.reason = MISSING
                logger.info("uid %d: HEAD failed: %s", c.uid, e)
                return
            except Exception as e:  # noqa: BLE001 - a peer must never crash the validator
                c.reason = Rejection(RejectCode.UNREADABLE, type(e).__name__)
                return
        c.last_modified, c.etag = info.last_modified_unix, info.etag
        if info.size > cap:
            c.reason = Rejection(RejectCode.OVERSIZE, f"{info.size} bytes > cap {cap}")
            return
        c.reason = timing_rejection(c, info, watch, open_ts=open_ts, cutoff_ts=cutoff_ts, skew=skew)

    await asyncio.gather(*(head(c) for c in cands))
    todo = [c for c in cands if c.reason is None]
    left = max(0.1, deadline - time.monotonic())
    requests = [
        GetRequest(directory.client(c.hotkey), keys.upload_key(c.hotkey, window), cap) for c in todo
    ]
    results = await gather(requests, concurrency=concurrency, time_budget=left)
    # hashing, unsealing and decoding take a worker thread (training/offload.py): at scale they
    # would hold the event loop, on which the upload watcher polls the next window
    await in_worker(_keep_bodies, todo, results)
    fetched = [c for c in todo if c.reason is None]
    # keys get their own budget: slow downloads must not cut the wait for the reveal deadline
    await open_sealed(directory, fetched, window, time_budget, reveal_wait)
    await in_worker(_decode_opened, fetched, window, hp, shapes, cap)
    return cands


def _keep_bodies(todo: Sequence[Candidate], results: Sequence[bytes | StorageError]) -> None:
    """Each downloaded body as its candidate's (sealed) ``blob``, or why it is not: the
    download failed, or the body is not the content the watcher saw in time (its MD5 ETag)."""
    for c, res in zip(todo, results, strict=True):
        if isinstance(res, StorageError):
            c.reason = Rejection(RejectCode.DOWNLOAD_FAILED, type(res).__name__)
        elif (
            c.sighting is not None
            and _is_md5(c.etag)
            and hashlib.md5(res, usedforsecurity=False).hexdigest() != c.etag
        ):
            c.reason = Rejection(RejectCode.LATE, "body differs from the content seen in time")
        else:
            c.blob = res  # sealed until open_sealed replaces it with the signed upload


def _decode_opened(
    cands: Sequence[Candidate],
    window: int,
    hp: HParams,
    shapes: dict[str, tuple[int, ...]],
    cap: int,
) -> None:
    """Strictly decode each opened candidate's blob: its ``upload``, or ``reason``."""
    with collector_paused():  # an allocation burst, like the screening (screen.py)
        for c in cands:
            if c.reason is not None:
                continue
            got = decode_checked(
                c.blob, window=window, uid=c.uid, hotkey=c.hotkey, hp=hp, shapes=shapes, cap=cap
            )
            if isinstance(got, Rejection):
                c.reason = got
            else:
                c.upload = got


# awaited between looks for missing seal keys; False: stop looking (the reveal deadline)
RevealWait = Callable[[], Awaitable[bool]]

KEY_LOOK_S = 5.0  # one look for the missing keys: a peer that never answers holds up no one


def _unseal(opened: Sequence[tuple[Candidate, bytes]], window: int) -> None:
    """Each candidate's sealed ``blob`` opened with its revealed key, in place (or BAD_SEAL)."""
    for c, key in opened:
        try:
            c.blob = unseal_upload(c.blob, key, window=window, hotkey=c.hotkey)
        except SealError as e:
            c.reason, c.blob = Rejection(RejectCode.BAD_SEAL, str(e)), None


async def open_sealed(
    directory: PeerDirectory,
    cands: Sequence[Candidate],
    window: int,
    budget: float,
    wait: RevealWait | None = None,
) -> None:
    """Open each candidate's sealed ``blob`` with its revealed key, in place: the signed
    upload, or ``reason`` UNREVEALED (no key by the end) or BAD_SEAL (the key does not open it).

    Keys are looked for until ``wait`` returns False, then once more: a key that landed just
    before the deadline counts even if this validator saw the deadline block late. ``budget``
    seconds bound the whole wait (a stalled chain); each look lasts at most ``KEY_LOOK_S``."""
    pending, last = list(cands), wait is None
    stop_at = time.monotonic() + budget
    while pending:
        look_until = min(stop_at, time.monotonic() + KEY_LOOK_S)
        found = await asyncio.gather(
            *(reveal_of(directory.client(c.hotkey), c.hotkey, window, look_until) for c in pending)
        )
        opened = [(c, key) for c, key in zip(pending, found, strict=True) if key is not None]
        await in_worker(_unseal, opened, window)
        pending = [c for c, key in zip(pending, found, strict=True) if key is None]
        if not pending or last or time.monotonic() >= stop_at:
            break
        last = not await wait()  # past the reveal deadline: one final look, then stop
    for c in pending:
        c.reason, c.blob = (
            Rejection(RejectCode.UNREVEALED, "no seal key by the reveal deadline"),
            None,
        )
