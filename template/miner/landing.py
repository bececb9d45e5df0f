"""Did an upload whose PUT failed land anyway?

A PUT can time out on the miner's side and still be stored: a paused or overloaded bucket
answers late, after processing the request. The network then treats the object like any
other upload (the leader may select it, the bootstrap rule applies it when it is stored inside
the window's upload span), so putting its delta back into error feedback would send it a
second time next window, and a doubled delta looks harmful to every validator. Before putting
it back the miner asks the bucket, under the same rule the network uses:

- ``LANDED``: stored inside the upload span: counts as sent (nothing goes back);
- ``ABSENT``: not stored, or stored after the cut-off (no validator takes it): put it back;
- ``UNKNOWN``: the bucket could not be asked before ``give_up``: nothing goes back (a delta
  applied twice harms the network; one lost costs this miner one window's residual), and the
  window counts as missed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time

from template.protocol.windows import upload_time_verdict
from template.storage import ObjectNotFound, StorageClient, StorageError, keys

logger = logging.getLogger(__name__)


class Fate(enum.Enum):
    LANDED = "landed"
    ABSENT = "absent"
    UNKNOWN = "unknown"


async def upload_fate(
    bucket: StorageClient,
    key: str,
    *,
    open_ts: float | None,
    cutoff_ts: float | None,
    give_up: float,
    poll_s: float = 1.0,
) -> Fate:
    """Ask ``bucket`` about ``key`` until it answers or ``time.monotonic()`` passes ``give_up``.

    ``open_ts``/``cutoff_ts``: chain timestamps of the window's first block and its upload
    cut-off block (None when unknown: a stored object then counts as in the span, as in the
    bootstrap rule)."""
    while True:
        try:
            info = await bucket.head(key, deadline=give_up)
        except ObjectNotFound:
            return Fate.ABSENT
        except StorageError as e:
            if time.monotonic() + poll_s >= give_up:
                logger.warning("%s: storage still unreachable (%s); treating it as sent", key, e)
                return Fate.UNKNOWN
            await asyncio.sleep(poll_s)
            continue
        if open_ts is None or cutoff_ts is None:
            return Fate.LANDED
        verdict = upload_time_verdict(info.last_modified_unix, open_ts, cutoff_ts)
        return Fate.LANDED if verdict == "ok" else Fate.ABSENT


async def absent_uploads(
    bucket: StorageClient, hotkey: str, windows: list[int], *, give_up: float
) -> set[int]:
    """The windows of ``windows`` whose upload is not in ``bucket`` (a restart's check of its
    sent records: an upload stopped before its PUT keeps its values in error feedback). A
    stored object counts as landed whatever its time, and a bucket that cannot be asked
    before ``give_up`` as landed too: never send a delta twice."""
    absent = set()
    for w in windows:
        fate = await upload_fate(
            bucket, keys.upload_key(hotkey, w), open_ts=None, cutoff_ts=None, give_up=give_up
        )
        if fate is Fate.ABSENT:
            absent.add(w)
    return absent
