"""Staying on the global model: apply each window's aggregate, check fingerprints, re-sync.

Window ``a``'s aggregate is applied during window ``a + 1`` (the one-window-delayed update):

1. wait for ``upload_cutoff(a)`` (no peer list can exist before);
2. poll the leader's peer list for ``a``; if it is not out by ``end(a + 1)``, use the
   bootstrap rule alone (every miner's upload of ``a`` that passes the checks a node can make
   by itself, lowest uids first);
3. fetch the listed uploads from the miners' buckets, decode them strictly, and hand the
   outer step to the trainer (global model and live weights, between two training steps);
4. record the fingerprint of the global model and, when the leader's fingerprint for ``a``
   is published, compare; on a mismatch re-sync from the latest checkpoint plus aggregates.

When the miner is more than a window behind (restart, outage), it prefers the leader's
published Aggregate of ``a``, which carries the exact bytes the leader applied.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable

from template.hparams import HParams, hparams_hash
from template.protocol.aggregation import apply_uploads, decode_peer_uploads
from template.protocol.catchup import (
    catch_up,
    current_leader,
    fetch_aggregate,
    fetch_fingerprint,
    fetch_peer_list,
)
from template.protocol.directory import PeerDirectory
from template.protocol.fingerprint import fingerprints_match, model_fingerprint
from template.protocol.selection import bootstrap_peers
from template.protocol.windows import WindowClock, upload_time_verdict
from template.storage import StorageError, keys
from template.training.model import param_shapes
from template.training.wire import Upload, upload_size_cap

from .clock import BlockClock
from .trainer import Trainer, copy_params

logger = logging.getLogger(__name__)

POLL_S = 0.5  # seconds between polls for a leader document (scaled down for fast chains)


class Sync:
    """Runs the aggregate/fingerprint chain of windows as one background task."""

    def __init__(
        self,
        hp: HParams,
        directory: PeerDirectory,
        trainer: Trainer,
        clock: BlockClock,
        *,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.hp, self.directory, self.trainer, self.clock = hp, directory, trainer, clock
        self.windows = WindowClock(hp.window)
        self.shapes = param_shapes(trainer.global_model)
        self.cap = upload_size_cap(self.shapes, hp.compression)
        self.run_hash = hparams_hash(hp)
        self.progress = progress
        self.ours: dict[int, list[float]] = {}  # our fingerprint after applying each window
        self.fingerprint_ok: bool | None = None
        self.in_sync = True
        self.peers_applied = 0
        self.needs_resync = False
        self.last_error = ""
        self._checks: set[asyncio.Task] = set()

    @property
    def applied_through(self) -> int:
        return self.trainer.applied_through

    def _poll(self) -> float:
        return min(POLL_S, max(0.05, self.clock.block_time / 2))

    # --- the background task -------------------------------------------------------
    async def run(self) -> None:
        """Apply windows in order forever (cancel to stop). Errors are logged, then retried."""
        while True:
            try:
                if self.needs_resync:
                    await self.resync()
                    continue
                a = self.applied_through + 1
                await self.clock.until(self.windows.upload_cutoff(a))
                await self.apply_window(a)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - never crash the miner on a peer or outage
                msg = f"{type(e).__name__}: {e}"
                if msg != self.last_error:
                    logger.warning("sync: %s (retrying)", msg)
                self.last_error = msg
                await asyncio.sleep(max(1.0, self.clock.block_time))

    async def apply_window(self, a: int) -> None:
        await self.directory.refresh()
        behind = self.clock.block_now() >= self.windows.end(a + 1)
        if behind:  # the leader's aggregate, when published, is the exact record
            agg = await fetch_aggregate(self.directory, a, self.hp, self.trainer.global_model)
            if agg is not None:
                blobs: list[bytes | None] = list(agg.uploads)
                await self._apply(a, list(agg.peers), blobs, "aggregate")
                return
        leader = None
        while True:
            leader = await current_leader(self.directory, a, self.hp)
            if leader is not None:
                pl = await fetch_peer_list(self.directory, leader, a, self.hp)
                if pl is not None:
                    blobs = await self._fetch_uploads(a, list(pl.peers))
                    await self._apply(a, list(pl.peers), blobs, "leader", leader)
                    return
            if self.clock.block_now() >= self.windows.end(a + 1):
                break
            await asyncio.sleep(self._poll())
        peers, blobs = await self._bootstrap(a)
        logger.info(
            "window %d: no peer list from the leader, bootstrap rule (%d peers)", a, len(peers)
        )
        await self._apply(a, peers, blobs, "bootstrap", leader)

    async def _fetch_uploads(self, a: int, peers: list[tuple[int, str]]) -> list[bytes | None]:
        async def one(hotkey: str) -> bytes | None:
            client = self.directory.client(hotkey)
            if client is None:
                return None
            try:
                return await client.get_bytes(keys.upload_key(hotkey, a), self.cap)
            except StorageError as e:
                logger.debug("window %d: upload of %s unavailable: %s", a, hotkey[:8], e)
                return None

        return list(await asyncio.gather(*(one(hk) for _, hk in peers)))

    async def _bootstrap(self, a: int) -> tuple[list[tuple[int, str]], list[bytes | None]]:
        """Every miner's upload of ``a`` passing the self-checks; the lowest uids win."""
        open_ts = await self.clock.timestamp(self.windows.start(a))
        cutoff_ts = await self.clock.timestamp(self.windows.upload_cutoff(a))
        miners = self.directory.miners()

        async def one(uid: int, hotkey: str) -> bytes | None:
            client = self.directory.client(hotkey)
            if client is None:
                return None
            try:
                obj = await client.get(keys.upload_key(hotkey, a), self.cap)
            except StorageError:
                return None
            if open_ts is not None and cutoff_ts is not None:
                verdict = upload_time_verdict(obj.info.last_modified_unix, open_ts, cutoff_ts)
                if verdict != "ok":
                    return None
            ok = await asyncio.to_thread(
                decode_peer_uploads, [obj.data], [(uid, hotkey)], a, self.hp, self.shapes
            )
            return obj.data if ok else None

        blobs = await asyncio.gather(*(one(u, hk) for u, hk in miners))
        valid = {u: hk for (u, hk), b in zip(miners, blobs, strict=True) if b is not None}
        by_uid = {u: b for (u, _), b in zip(miners, blobs, strict=True)}
        peers = bootstrap_peers(valid, self.hp.window.peers_per_window)
        return peers, [by_uid[u] for u, _ in peers]

    async def _apply(
        self,
        a: int,
        peers: list[tuple[int, str]],
        blobs: list[bytes | None],
        basis: str,
        leader: str | None = None,
    ) -> None:
        uploads: list[Upload] = await asyncio.to_thread(
            decode_peer_uploads, blobs, peers, a, self.hp, self.shapes
        )
        hp, trainer = self.hp, self.trainer

        def job() -> tuple[int, list[float]]:
            if trainer.applied_through != a - 1:
                raise RuntimeError(f"window {a} out of order (model at {trainer.applied_through})")
            n = trainer.apply_outer(lambda m: apply_uploads(m, uploads, hp))
            trainer.applied_through = a
            return n, model_fingerprint(trainer.global_model)

        fut = await asyncio.to_thread(trainer.submit, job)
        n, fp = await asyncio.wrap_future(fut)
        self.peers_applied = n
        self.ours[a] = fp
        for old in [w for w in self.ours if w < a - 8]:
            del self.ours[old]
        logger.info("window %d: applied %d/%d peers (%s)", a, n, len(peers), basis)
        if leader is not None or basis == "aggregate":
            task = asyncio.create_task(self.check_fingerprint(a, leader))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    # --- fingerprints and re-sync ------------------------------------------------------
    async def fetch_fingerprint(self, a: int, leader: str | None) -> list[float] | None:
        for hotkey in [leader] if leader else self.directory.validators():
            doc = await fetch_fingerprint(self.directory, hotkey, a, self.hp)
            if doc is not None:
                return list(doc.values)
        return None

    async def check_fingerprint(self, a: int, leader: str | None) -> None:
        """Compare our fingerprint of ``a`` with the leader's once published (until end(a+2))."""
        give_up = self.windows.end(a + 2)
        while True:
            try:
                theirs = await self.fetch_fingerprint(a, leader)
            except Exception as e:  # noqa: BLE001
                logger.debug("fingerprint of %d: %s", a, e)
                theirs = None
            if theirs is not None:
                break
            if self.clock.block_now() >= give_up:
                return
            await asyncio.sleep(self._poll())
        ours = self.ours.get(a)
        if ours is None:
            return
        ok = fingerprints_match(ours, theirs)
        self.fingerprint_ok = ok
        if ok:
            self.in_sync = True
        elif not self.needs_resync:
            logger.warning("window %d: fingerprint differs from the leader's; re-syncing", a)
            self.in_sync = False
            self.needs_resync = True

    async def resync(self) -> None:
        """Rebuild the global model from the latest checkpoint and the aggregates since."""
        scratch = copy.deepcopy(self.trainer.global_model).cpu()
        target = max(-1, int(self.windows.window_of(int(self.clock.block_now()))) - 1)
        got = await catch_up(
            scratch,
            self.directory,
            self.hp,
            applied_through=None,
            target=target,
            progress=self.progress,
        )
        if got is None:
            logger.warning("re-sync: no checkpoint published yet; staying on our model")
            self.needs_resync = False
            return
        trainer = self.trainer

        def job() -> list[float]:
            copy_params(scratch, trainer.global_model)
            trainer.reset_live()
            trainer.applied_through = got
            return model_fingerprint(trainer.global_model)

        fut = await asyncio.to_thread(trainer.submit, job)
        self.ours[got] = await asyncio.wrap_future(fut)
        self.needs_resync = False
        self.in_sync = True
        self.fingerprint_ok = None
        logger.info("re-synced to window %d from checkpoint and aggregates", got)

    async def close(self) -> None:
        for t in list(self._checks):
            t.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
