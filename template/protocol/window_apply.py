"""Applying one window's aggregate: the consensus path, written once for miners and validators.

Window ``a``'s aggregate is applied during window ``a + 1`` (the one-window-delayed update).
``WindowApplier.apply_window(a)`` does, in order:

1. when the node is more than a window behind, the leader's published Aggregate of ``a``
   (it carries the exact bytes the leader applied);
2. otherwise the leader's signed peer list for ``a`` (polled until a given block), the listed
   uploads fetched from the miners' buckets under the upload size cap and opened with their
   revealed keys (uploads.py);
3. when no peer list comes, the bootstrap rule: every miner's upload of ``a`` that is stored
   inside the window's upload span, opens and decodes strictly, lowest uids first;
4. decode strictly, apply the outer step through the node's ``GlobalModel`` (in place, or the
   miner's training-thread job) and record the model fingerprint.

``check_fingerprint`` compares a recorded fingerprint with the leader's; ``resync`` rebuilds
the model from the latest checkpoint plus the aggregates since. Scheduling (when to poll,
whether to wait) stays with each role; every decision about *which* bytes change the model
is made here.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from template.hparams import HParams
from template.training.offload import in_worker
from template.training.wire import Upload, upload_size_cap

from .aggregation import apply_uploads, decode_peer_uploads
from .catchup import (
    catch_up,
    current_leader,
    fetch_aggregate,
    fetch_fingerprint,
    fetch_peer_list,
)
from .directory import PeerDirectory
from .documents import PeerList
from .fingerprint import fingerprints_match, model_fingerprint
from .selection import bootstrap_peers
from .uploads import fetch_opened
from .windows import WindowClock, upload_time_verdict

logger = logging.getLogger(__name__)

Peer = tuple[int, str]
OuterStep = Callable[[torch.nn.Module], int]
# (window, uid, hotkey) -> (blob, LastModified) a node already holds (blob None: not held)
CachedUpload = Callable[[int, int, str], "tuple[bytes | None, float | None] | None"]
KEEP_FINGERPRINTS = 8  # windows of our own fingerprints kept for late comparisons


def _in_upload_span(stamp: float | None, open_ts: float | None, cutoff_ts: float | None) -> bool:
    """Stored between the window's first block and its upload cut-off (unknown times pass)."""
    if stamp is None or open_ts is None or cutoff_ts is None:
        return True
    return upload_time_verdict(stamp, open_ts, cutoff_ts) == "ok"


class GlobalModel(Protocol):
    """How a node changes its global model: ``InPlaceModel`` or the miner's trainer jobs."""

    applied_through: int | None

    def copy(self) -> torch.nn.Module:
        """A CPU copy of the global model (the scratch model of a re-sync)."""

    async def apply(self, window: int, step: OuterStep) -> tuple[int, list[float]]:
        """Run ``step`` on the model as window ``window``; (peers applied, fingerprint)."""

    async def replace(self, window: int, source: torch.nn.Module) -> list[float]:
        """Model <- ``source`` (a re-sync through ``window``); the new fingerprint."""


class InPlaceModel:
    """A global model changed directly (the validator's; ``on_change`` drops cached losses)."""

    def __init__(
        self,
        model: torch.nn.Module,
        applied_through: int | None,
        on_change: Callable[[], None] | None = None,
    ):
        self.model, self.applied_through, self.on_change = model, applied_through, on_change

    def copy(self) -> torch.nn.Module:
        return copy.deepcopy(self.model).cpu()

    def _changed(self, window: int) -> list[float]:
        self.applied_through = window
        if self.on_change is not None:
            self.on_change()
        return model_fingerprint(self.model)

    async def apply(self, window: int, step: OuterStep) -> tuple[int, list[float]]:
        """``step`` and the fingerprint in a worker thread (``training.offload``): the event
        loop's other tasks (the validator's upload watcher) run meanwhile."""
        check_order(self.applied_through, window)

        def run() -> tuple[int, list[float]]:
            return step(self.model), self._changed(window)

        return await in_worker(run)

    async def replace(self, window: int, source: torch.nn.Module) -> list[float]:
        def run() -> list[float]:
            copy_params(source, self.model)
            return self._changed(window)

        return await in_worker(run)


def check_order(applied_through: int | None, window: int) -> None:
    """Aggregates go in window order: ``window`` must follow ``applied_through``."""
    if applied_through is not None and applied_through != window - 1:
        raise RuntimeError(f"window {window} out of order (model at {applied_through})")


def copy_params(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """``dst``'s parameters <- ``src``'s (same architecture; devices may differ)."""
    with torch.no_grad():
        for (_name, p), (_, q) in zip(src.named_parameters(), dst.named_parameters(), strict=True):
            q.copy_(p)


@dataclass
class AppliedWindow:
    """What ``apply_window`` applied, and from which basis."""

    window: int
    basis: str  # "aggregate", "leader" or "bootstrap"
    leader: str | None
    peers: list[Peer]
    blobs: list[bytes | None]
    applied: int = 0
    fingerprint: list[float] = field(default_factory=list)


class WindowApplier:
    """One node's consensus path: which bytes change the model, window after window."""

    def __init__(
        self,
        hp: HParams,
        directory: PeerDirectory,
        model: GlobalModel,
        shapes: dict[str, tuple[int, ...]],
        *,
        block: Callable[[], Awaitable[int]],
        timestamp: Callable[[int], Awaitable[float | None]],
        poll_s: Callable[[], float] = lambda: 1.0,
        hotkey: str | None = None,
        cached: CachedUpload | None = None,
    ):
        self.hp, self.directory, self.model, self.shapes = hp, directory, model, shapes
        self.block, self.timestamp, self.poll_s = block, timestamp, poll_s
        self.hotkey, self.cached = hotkey, cached
        self.windows = WindowClock(hp.window)
        self.cap = upload_size_cap(shapes, hp.compression)
        self.own_fingerprints: dict[int, list[float]] = {}  # ours after applying each window
        self.peers_applied = 0
        self.fingerprint_ok: bool | None = None  # last comparison with the leader's
        self.in_sync = True

    @property
    def applied_through(self) -> int | None:
        return self.model.applied_through

    # --- the window --------------------------------------------------------------------------
    async def apply_window(
        self,
        a: int,
        *,
        wait_until: int | None = None,
        bootstrap: bool = True,
        own_list: PeerList | None = None,
        should_wait: Callable[[], bool] = lambda: True,
        leader: str | None = None,
    ) -> AppliedWindow | None:
        """Apply window ``a``'s aggregate; None when nothing was applied (no list, no bootstrap).

        The leader's peer list is polled until block ``wait_until`` (default ``end(a + 1)``,
        while ``should_wait()``); then the bootstrap rule applies when ``bootstrap``.
        ``own_list`` is this node's own list, used when it is the leader of ``a``; ``leader``,
        when known already, saves looking it up (``current_leader``) at every poll.
        """
        wait_until = self.windows.end(a + 1) if wait_until is None else wait_until
        if await self.block() >= self.windows.end(a + 1):
            agg = await fetch_aggregate(self.directory, a, self.hp, self.shapes)
            if agg is not None:
                return await self.apply(a, list(agg.peers), list(agg.uploads), "aggregate", None)
        known = leader
        while True:
            leader = known or await current_leader(self.directory, a, self.hp)
            doc = await self.leader_list(a, leader, own_list)
            if doc is not None:
                peers = list(doc.peers)
                blobs = await self.fetch_blobs(a, peers)
                return await self.apply(a, peers, blobs, "leader", leader)
            if await self.block() >= wait_until or not should_wait():
                break
            await asyncio.sleep(self.poll_s())
        if not bootstrap:
            return None
        peers, blobs = await self.bootstrap(a)
        logger.info(
            "window %d: no peer list from the leader, bootstrap rule (%d peers)", a, len(peers)
        )
        return await self.apply(a, peers, blobs, "bootstrap", leader)

    async def leader_list(
        self, a: int, leader: str | None, own_list: PeerList | None = None
    ) -> PeerList | None:
        if leader is None:
            return None
        if leader == self.hotkey and own_list is not None:
            return own_list
        # a leader restarted after publishing its list (own_lists lost) applies that published
        # list, as its followers did, not the bootstrap rule
        return await fetch_peer_list(self.directory, leader, a, self.hp)

    async def fetch_blobs(self, a: int, peers: list[Peer]) -> list[bytes | None]:
        """The peers' uploads of ``a`` (ones held already, else fetched under the size cap)."""

        async def one(uid: int, hotkey: str) -> bytes | None:
            held = self.cached(a, uid, hotkey) if self.cached is not None else None
            if held is not None and held[0] is not None:
                return held[0]
            client = self.directory.client(hotkey)
            if client is None:
                return None
            got = await fetch_opened(client, hotkey, a, self.cap)
            return None if got is None else got.blob

        return list(await asyncio.gather(*(one(u, hk) for u, hk in peers)))

    async def bootstrap(self, a: int) -> tuple[list[Peer], list[bytes | None]]:
        """The bootstrap rule: uploads of ``a`` stored in its upload span that decode strictly;
        the ``peers_per_window`` lowest uids win."""
        open_ts = await self.timestamp(self.windows.start(a))
        cutoff_ts = await self.timestamp(self.windows.upload_cutoff(a))
        miners = self.directory.miners()

        async def one(uid: int, hotkey: str) -> bytes | None:
            held = self.cached(a, uid, hotkey) if self.cached is not None else None
            if held is not None and held[0] is not None:
                data, stamp = held
            else:  # fetched here when not held, so every node judges the same bytes
                client = self.directory.client(hotkey)
                if client is None:
                    return None
                got = await fetch_opened(client, hotkey, a, self.cap)
                if got is None:
                    return None
                data, stamp = got.blob, got.last_modified
            if data is None or not _in_upload_span(stamp, open_ts, cutoff_ts):
                return None
            ok = await asyncio.to_thread(
                decode_peer_uploads, [data], [(uid, hotkey)], a, self.hp, self.shapes
            )
            return data if ok else None

        blobs = await asyncio.gather(*(one(u, hk) for u, hk in miners))
        by_uid = {u: b for (u, _), b in zip(miners, blobs, strict=True)}
        valid = {u: hk for u, hk in miners if by_uid[u] is not None}
        peers = bootstrap_peers(valid, self.hp.window.peers_per_window)
        return peers, [by_uid[u] for u, _ in peers]

    async def apply(
        self,
        a: int,
        peers: list[Peer],
        blobs: list[bytes | None],
        basis: str,
        leader: str | None,
    ) -> AppliedWindow:
        """Decode strictly (bad or missing blobs are skipped, as everywhere) and apply."""
        uploads: list[Upload] = await asyncio.to_thread(
            decode_peer_uploads, blobs, peers, a, self.hp, self.shapes
        )
        hp = self.hp
        step = functools.partial(apply_uploads, uploads=uploads, hp=hp)  # sharded models read it
        n, fp = await self.model.apply(a, step)
        self.peers_applied = n
        self._remember(a, fp)
        logger.info("window %d: applied %d/%d peers (%s)", a, n, len(peers), basis)
        return AppliedWindow(a, basis, leader, peers, blobs, n, fp)

    def _remember(self, a: int, fingerprint: list[float]) -> None:
        self.own_fingerprints[a] = fingerprint
        for old in [w for w in self.own_fingerprints if w < a - KEEP_FINGERPRINTS]:
            del self.own_fingerprints[old]

    # --- fingerprints and re-sync ---------------------------------------------------------------
    async def leader_fingerprint(self, a: int, leader: str | None) -> list[float] | None:
        """The leader's published fingerprint of ``a`` (no leader: the first candidate's)."""
        for hotkey in [leader] if leader else self.directory.validators():
            doc = await fetch_fingerprint(self.directory, hotkey, a, self.hp)
            if doc is not None:
                return list(doc.values)
        return None

    async def check_fingerprint(self, a: int, leader: str | None) -> bool | None:
        """Ours of ``a`` against the leader's: True/False, None when either is unknown."""
        ours = self.own_fingerprints.get(a)
        if ours is None:
            return None
        theirs = await self.leader_fingerprint(a, leader)
        if theirs is None:
            return None
        ok = fingerprints_match(ours, theirs)
        self.fingerprint_ok = ok
        if ok:
            self.in_sync = True
        else:
            logger.warning("window %d: fingerprint differs from the leader's; re-syncing", a)
            self.in_sync = False
        return ok

    async def resync(
        self, target: int, progress: Callable[[int, int], None] | None = None
    ) -> int | None:
        """Rebuild from the latest checkpoint plus aggregates through ``target``; the window
        reached, or None (no checkpoint published: the model stays as it is). A node that
        disagrees with the leader never rebuilds from a checkpoint of its own."""
        scratch = self.model.copy()
        got = await catch_up(
            scratch,
            self.directory,
            self.hp,
            applied_through=None,
            target=target,
            progress=progress,
            exclude=self.hotkey,
        )
        if got is None:
            logger.warning("re-sync: no checkpoint published yet; staying on our model")
            return None
        self._remember(got, await self.model.replace(got, scratch))
        self.in_sync = True
        logger.info("re-synced to window %d from checkpoint and aggregates", got)
        return got
