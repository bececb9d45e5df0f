"""First-seen times by the validator's own clock: polls each miner's upload object (HEAD)
while a window's uploads are due, so priority and lateness never rest on the miner's
storage ``LastModified``.

For each (window, hotkey) the log keeps a ``Sighting`` of the latest content (ETag):
``first_seen`` is when a HEAD response first showed it, and ``absent_before`` the send time
of the previous HEAD, which did not show it. So the content became readable in
``(absent_before, first_seen]``, by the validator's clock alone. Content that changes gets
a new sighting. Content first seen after the watcher saw the reveal start (the block after
the cut-off, when seal keys may be out) is late: it could be a copy of a revealed upload.
Cost: one HEAD per miner per round during the upload period (``upload_blocks +
grace_blocks`` blocks), at most ``concurrency`` at once. Rounds come every ``interval``
seconds, or every quarter block when blocks are shorter (``round_interval``): the closing
round must fall in the cut-off block. With rounds one second apart on one-second blocks it
could land only at the reveal start, so an honest upload that landed in the grace block was
first seen "once seal keys could be out" (the local subnet's end-to-end test, window 0,
2026-12-04).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from template.protocol.directory import PeerDirectory
from template.protocol.windows import WindowClock
from template.storage import ObjectNotFound, keys

logger = logging.getLogger(__name__)


MIN_ROUND_S = 0.2  # the fastest the closing rounds come


@dataclass
class BlockPace:
    """Seconds per block, from the heights the watcher reads (None until the height moves)."""

    seconds: float | None = None
    last: tuple[int, float] | None = None  # (height, when it was first read)

    def observe(self, block: int, now: float) -> None:
        if self.last is not None and block > self.last[0]:
            per = (now - self.last[1]) / (block - self.last[0])
            self.seconds = per if self.seconds is None else 0.8 * self.seconds + 0.2 * per
        if self.last is None or block != self.last[0]:
            self.last = (block, now)


def round_interval(interval: float, block_seconds: float | None) -> float:
    """Seconds between rounds while a window's uploads are due: a quarter block (so a round
    falls in the cut-off block; the fastest while the block time is unknown), at least
    ``MIN_ROUND_S``, at most ``interval``."""
    if block_seconds is None:
        return min(interval, MIN_ROUND_S)
    return min(interval, max(MIN_ROUND_S, block_seconds / 4))


@dataclass(frozen=True)
class Sighting:
    """When the validator saw one object content (validator clock, ``time.time()``)."""

    etag: str
    first_seen: float  # a HEAD response first showed this content
    absent_before: float | None  # send time of the HEAD before it, which did not show it


@dataclass
class WindowWatch:
    """What the watcher saw of one window's uploads."""

    sightings: dict[str, Sighting] = field(default_factory=dict)  # hotkey -> latest content
    last_sent: dict[str, float] = field(default_factory=dict)  # hotkey -> last HEAD's send time
    cutoff_seen: float | None = None  # when the watcher saw the cut-off block
    keys_out_seen: float | None = None  # when it saw the reveal start: keys may be out since
    closed: bool = False  # a full round ran after the cut-off: absent means late
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def observe(self, hotkey: str, etag: str | None, sent: float, received: float) -> None:
        """Record one HEAD: ``etag`` None when the object was absent."""
        before = self.last_sent.get(hotkey)
        self.last_sent[hotkey] = sent
        current = self.sightings.get(hotkey)
        if etag is None:
            self.sightings.pop(hotkey, None)
        elif current is None or current.etag != etag:
            self.sightings[hotkey] = Sighting(etag, received, before)


class FirstSeenLog:
    """Sightings of recent windows (the loop's watcher fills it, ``gather`` reads it)."""

    def __init__(self, keep_windows: int = 4) -> None:
        self.keep = keep_windows
        self.windows: dict[int, WindowWatch] = {}

    def window(self, window: int) -> WindowWatch:
        if window not in self.windows:
            self.windows[window] = WindowWatch()
            for old in [w for w in self.windows if w <= window - self.keep]:
                del self.windows[old]
        return self.windows[window]

    def get(self, window: int) -> WindowWatch | None:
        return self.windows.get(window)

    async def wait_closed(self, window: int, timeout: float) -> bool:
        """Wait (bounded) for the round after ``window``'s cut-off, when it is being watched."""
        ww = self.windows.get(window)
        if ww is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await ww.done.wait()
        except TimeoutError:
            return False
        return ww.closed


async def poll_round(
    ww: WindowWatch,
    directory: PeerDirectory,
    hotkeys: Sequence[str],
    window: int,
    *,
    concurrency: int,
    clock: Callable[[], float] = time.time,
) -> None:
    """HEAD every hotkey's upload of ``window`` once (errors count as nothing seen)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(hk: str) -> None:
        client = directory.client(hk)
        if client is None:
            return
        async with sem:
            sent = clock()
            try:
                info = await client.head(keys.upload_key(hk, window))
                etag: str | None = info.etag or f"size:{info.size}"
            except ObjectNotFound:
                etag = None
            except Exception as e:  # noqa: BLE001 - a peer must never stop the watcher
                logger.debug("watch: HEAD of %s failed: %s", hk[:10], e)
                return
            ww.observe(hk, etag, sent, clock())

    await asyncio.gather(*(one(hk) for hk in hotkeys))


async def watch_uploads(
    log: FirstSeenLog,
    chain,
    wclock: WindowClock,
    directory: PeerDirectory,
    miners: Callable[[], Sequence[tuple[int, str]]],
    *,
    interval: float = 1.0,
    concurrency: int = 16,
    clock: Callable[[], float] = time.time,
) -> None:
    """Forever: poll the uploads of every window between its end and its cut-off, then one
    round after the cut-off block, then close it. Runs as a background task of the loop."""
    pace = BlockPace()
    while True:
        due = False  # a window's uploads are due: rounds at round_interval
        try:
            block = await chain.block()
            pace.observe(block, time.monotonic())
            w = wclock.window_of(block) - 1
            for window in (w - 1, w):
                if window < 0 or block < wclock.end(window):
                    continue
                ww = log.window(window)
                if ww.done.is_set():
                    continue
                past = block >= wclock.upload_cutoff(window)
                if past and not ww.last_sent:  # first seen after its cut-off: cannot tell
                    ww.done.set()
                    continue
                if past and ww.cutoff_seen is None:
                    ww.cutoff_seen = clock()
                if block >= wclock.reveal_start(window) and ww.keys_out_seen is None:
                    ww.keys_out_seen = clock()  # a closing round this late proves less
                hotkeys = [hk for _, hk in miners()]
                await poll_round(
                    ww, directory, hotkeys, window, concurrency=concurrency, clock=clock
                )
                if past:
                    ww.closed = True
                    ww.done.set()
                else:
                    due = True
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - retried next round
            logger.warning("upload watcher: %s", e)
        await asyncio.sleep(round_interval(interval, pace.seconds) if due else interval)
