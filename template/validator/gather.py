"""Fetch a window's uploads and run every check that comes before evaluation.

Per miner, in order: a bucket commitment exists; HEAD the object (missing?); its size is
under the cap (oversized objects are never downloaded); its LastModified lies between the
timestamps of the window's first block and of its upload cut-off (early/late); then the
body is downloaded (bounded parallelism, time budget) and strictly decoded with the
expected header (signature, window, uid, hotkey, spec version, hparams hash).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from template import SPEC_VERSION
from template.hparams import HParams, hparams_hash
from template.protocol.directory import PeerDirectory
from template.protocol.windows import upload_time_verdict
from template.storage import GetRequest, ObjectNotFound, StorageError, gather, keys
from template.training.envelope import WireError
from template.training.wire import Upload, decode_upload, upload_size_cap

logger = logging.getLogger(__name__)

MISSING = "missing"


@dataclass
class Candidate:
    """One miner's upload for a window and what the pre-evaluation checks said."""

    uid: int
    hotkey: str
    blob: bytes | None = None
    last_modified: float | None = None
    upload: Upload | None = None
    reason: str | None = None  # None: passed; MISSING or why it was rejected

    @property
    def ok(self) -> bool:
        return self.reason is None and self.upload is not None


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
) -> list[Candidate]:
    """Every miner's candidate for ``window`` (never raises for a bad peer)."""
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
                c.reason = f"unreadable ({type(e).__name__})"
                return
        c.last_modified = info.last_modified_unix
        if info.size > cap:
            c.reason = f"oversized ({info.size} bytes > cap {cap})"
            return
        verdict = upload_time_verdict(c.last_modified, open_ts, cutoff_ts, skew=skew)
        if verdict != "ok":
            c.reason = f"{verdict} upload (LastModified {c.last_modified:.0f})"

    await asyncio.gather(*(head(c) for c in cands))
    todo = [c for c in cands if c.reason is None]
    left = max(0.1, deadline - time.monotonic())
    requests = [
        GetRequest(directory.client(c.hotkey), keys.upload_key(c.hotkey, window), cap) for c in todo
    ]
    results = await gather(requests, concurrency=concurrency, time_budget=left)
    run = hparams_hash(hp)
    for c, res in zip(todo, results, strict=True):
        if isinstance(res, StorageError):
            c.reason = f"download failed ({type(res).__name__})"
            continue
        c.blob = res
        try:
            c.upload = decode_upload(
                res,
                max_bytes=cap,
                expected={
                    "window": window,
                    "uid": c.uid,
                    "hotkey": c.hotkey,
                    "spec_version": SPEC_VERSION,
                    "hparams_hash": run,
                },
                param_shapes=shapes,
                config=hp.compression,
            )
        except WireError as e:
            c.reason = f"invalid ({e.reason}: {e})"[:300]
        except Exception as e:  # noqa: BLE001 - decode_upload promises WireError; be safe anyway
            c.reason = f"invalid ({type(e).__name__})"
    return cands
