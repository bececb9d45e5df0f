"""The validator's schedule around the shared window-apply path (``protocol/window_apply.py``).

Which bytes change the model is decided there, by the same code the miners run; the
validator's model changes in place (``InPlaceModel``). This module decides only when:

- ``advance_to(w - 1)`` at the start of window w's work: every window not applied yet, with
  no waiting (the leader's list, its aggregate when behind, else the bootstrap rule);
- ``settle(w, own_list, leader)`` at its end: publish this validator's peer list (its
  heartbeat); the leader applies its own list and publishes aggregate, fingerprint and
  checkpoints; a follower waits a bounded time for the leader's list. A leader too late for
  its followers' deadline publishes nothing and applies the bootstrap rule as they did.
After applying a leader's list, a follower compares fingerprints and re-syncs on a mismatch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import torch

from template.chain.errors import ChainError
from template.chain.protocol import Chain
from template.hparams import HParams
from template.protocol.directory import PeerDirectory
from template.protocol.documents import PeerList
from template.protocol.window_apply import (
    AppliedWindow,
    CachedUpload,
    InPlaceModel,
    WindowApplier,
)
from template.protocol.windows import WindowClock
from template.storage import StorageClient
from template.training.model import param_shapes

from .leader import publish_leader_documents, publish_peer_list
from .state import ValidatorState

logger = logging.getLogger(__name__)

LATE_MARGIN_BLOCKS = 3  # a leader this close to its followers' deadline publishes no list
KEEP_LISTS = 3  # windows of this validator's own peer lists kept (to apply them late)


class ValidatorSync:
    """Keeps the validator's model on the global model, window after window."""

    def __init__(
        self,
        hp: HParams,
        chain: Chain,
        key,  # signs the leader documents
        directory: PeerDirectory,
        bucket: StorageClient,
        model: torch.nn.Module,
        state: ValidatorState,
        *,
        follow_wait: float,
        held: CachedUpload,
        on_change: Callable[[], None],
    ):
        self.hp, self.chain, self.key, self.bucket = hp, chain, key, bucket
        self.model, self.state, self.follow_wait = model, state, follow_wait
        self.on_change = on_change
        self.clock = WindowClock(hp.window)
        self.global_model = InPlaceModel(model, state.applied_through, self._changed)
        self.applier = WindowApplier(
            hp,
            directory,
            self.global_model,
            param_shapes(model),
            block=self._block,
            timestamp=self._timestamp,
            hotkey=self.hotkey,
            cached=held,
        )
        self.own_lists: dict[int, PeerList] = {}
        self.checkpoint_published = False
        # block by which each window's aggregate reached the followers (an estimate; see
        # stale.py): the next window's uploads were trained without it when it came late
        self.landed: dict[int, int] = {}
        self.last_block, self.chain_down = 0, False

    async def _block(self) -> int:
        """The chain's block; while it cannot be read, the last one read (a stalled or
        unreachable chain has not passed any deadline: nothing here raises mid-window, so a
        window's work is never redone and its scores never counted twice)."""
        try:
            self.last_block, self.chain_down = await self.chain.block(), False
        except ChainError as e:
            if not self.chain_down:
                logger.warning(
                    "chain unreachable (%s); using its last block %d", e, self.last_block
                )
            self.chain_down = True
        return self.last_block

    def _landed_at(self, block: int) -> int:
        """``block``, or while the chain cannot be read (its block unknown; the miners' clocks
        ran on) as late as the followers could have waited: end of the next window."""
        return self.clock.end(self.clock.window_of(block) + 1) if self.chain_down else block

    async def _timestamp(self, block: int) -> float | None:
        """A block's timestamp, None while the chain cannot be read (as on the miners)."""
        try:
            return await self.chain.block_timestamp(block)
        except ChainError:
            return None

    @property
    def hotkey(self) -> str:
        return self.key.ss58_address

    def _changed(self) -> None:
        self.state.applied_through = self.global_model.applied_through
        self.on_change()

    # --- window w's work, start and end -----------------------------------------------------
    async def advance_to(self, target: int) -> None:
        """Apply every window through ``target`` not applied yet (no waiting)."""
        if self.global_model.applied_through is None:
            self.global_model.applied_through = target  # fresh subnet: the initial model is current
            self.state.applied_through = target
            return
        for w in range(self.global_model.applied_through + 1, target + 1):
            if not self._holds(w):  # a re-sync on the way may have loaded a newer checkpoint
                await self.apply_window(w, wait_until=0)

    async def settle(self, window: int, own_list: PeerList, leader: str | None) -> None:
        """Publish ``own_list``, then lead (apply it, publish documents) or follow."""
        self.own_lists = {w: d for w, d in self.own_lists.items() if w > window - KEEP_LISTS}
        if self._holds(window):  # a re-sync at this window's start loaded a newer checkpoint
            logger.info("window %d: in the model already (re-synced past it)", window)
            if leader != self.hotkey:  # the heartbeat (a leader publishes no list it did not apply)
                self.own_lists[window] = own_list
                await publish_peer_list(self.bucket, own_list, self.key)
            return
        if leader == self.hotkey and await self._too_late_to_lead(window):
            await self.apply_window(window, wait_until=0)  # followers' bootstrap rule, as they did
            return
        if leader == self.hotkey:
            own_list = await self._list_published_before(window) or own_list
        self.own_lists[window] = own_list
        published = await publish_peer_list(self.bucket, own_list, self.key)
        if leader != self.hotkey:
            await self._follow(window, leader)
        elif published or await self._publish_until_too_late(window, own_list):
            # followers apply it once published
            self.landed[window] = self._landed_at(await self._block())
            self._warn_if_late(window)
            await self._lead(window, own_list.peers)
        else:  # never published: followers apply the bootstrap rule, and so does the leader
            self.own_lists.pop(window, None)
            await self.apply_window(window, wait_until=0)

    def _holds(self, window: int) -> bool:
        through = self.global_model.applied_through
        return through is not None and through >= window

    async def _list_published_before(self, window: int) -> PeerList | None:
        """The peer list this leader already published for ``window`` (a retry, or a restart
        after publishing it, before applying it): followers may have applied it, so the
        leader keeps it rather than publish a second, different list for the same window.
        Its bucket is read only while this process holds no list (the first window after a
        start): otherwise a list it published is in ``own_lists``."""
        if self.own_lists:
            return self.own_lists.get(window)
        got = await self.applier.leader_list(window, self.hotkey)
        if got is not None:
            logger.info("window %d: keeping the peer list published before a restart", window)
        return got

    def _warn_if_late(self, window: int) -> None:
        """A leader's list after its publish deadline: the miners trained the next window from
        the model one aggregate behind (it is then measured on the current one)."""
        due, at = self.clock.publish_deadline(window), self.landed[window]
        if at > due:
            logger.warning(
                "window %d: peer list published at block %d, after its deadline %d: miners "
                "trained window %d without it (give the validator more cores or time)",
                window,
                at,
                due,
                window + 1,
            )

    async def _publish_until_too_late(self, window: int, own_list: PeerList) -> bool:
        """The leader's list could not be stored (its bucket down): retry while followers still
        wait for it. Applying a list nobody can read would split the subnet (followers on the
        bootstrap rule, no aggregate for catch-up), so without it the leader follows the rule."""
        give_up = time.monotonic() + self.follow_wait  # bounded even while the chain is down
        while time.monotonic() < give_up and not await self._too_late_to_lead(window):
            await asyncio.sleep(min(2.0, max(0.2, self.applier.poll_s())))
            if await publish_peer_list(self.bucket, own_list, self.key):
                logger.info("window %d: peer list published on a retry", window)
                return True
        logger.warning("window %d: peer list never published; bootstrap rule as followers", window)
        return False

    async def _too_late_to_lead(self, window: int) -> bool:
        """Followers wait for the leader's list of ``window`` until ``end(window + 1)``, then
        apply the bootstrap rule. A list published after that (a leader slow or just restarted)
        would split the subnet: miners on the bootstrap set, the leader on its own list, and
        every honest upload of the next window would look out of sync to the leader."""
        late = await self._block() >= self.clock.end(window + 1) - LATE_MARGIN_BLOCKS
        if late:
            logger.warning(
                "window %d: too late for a peer list (followers applied the bootstrap rule); "
                "applying the bootstrap rule as they did",
                window,
            )
        return late

    async def _lead(self, window: int, peers) -> None:
        """Leader: apply ``peers`` then publish the aggregate, fingerprint and checkpoints."""
        blobs = await self.applier.fetch_blobs(window, list(peers))
        done = await self.applier.apply(window, list(peers), blobs, "leader", self.hotkey)
        await self._publish_as_leader(done)

    async def _follow(self, window: int, leader: str | None) -> None:
        """Apply the leader's peer list for ``window`` once it is out (bounded wait)."""
        deadline = time.monotonic() + self.follow_wait
        applied = await self.apply_window(
            window,
            leader=leader,
            wait_until=self.clock.publish_deadline(window),
            bootstrap=False,
            should_wait=lambda: time.monotonic() < deadline,
        )
        if not applied:
            logger.info("no peer list from the leader for window %d yet; applied later", window)

    # --- one window, through the shared path ----------------------------------------------------
    async def apply_window(self, window: int, **how) -> bool:
        """Apply ``window``'s aggregate (``how``: see ``WindowApplier.apply_window``); a leader
        publishes its documents (aggregates of every window keep catch-up whole), a follower
        checks the leader's fingerprint and re-syncs on a mismatch."""
        done = await self.applier.apply_window(window, own_list=self.own_lists.get(window), **how)
        if done is None:
            return False
        self._note_landed(done)
        if done.leader == self.hotkey:
            await self._publish_as_leader(done)
        elif done.leader is not None or done.basis == "aggregate":
            await self._check_fingerprint(window, done.leader)
        return True

    def _note_landed(self, done: AppliedWindow) -> None:
        """When the followers had ``done.window``'s aggregate: the bootstrap rule at their
        deadline end(window + 1); a peer list or aggregate no earlier than we applied it."""
        bootstrap = done.basis == "bootstrap"
        block = self.clock.end(done.window + 1) if bootstrap else self._landed_at(self.last_block)
        self.landed[done.window] = max(block, self.landed.get(done.window, 0))
        for old in [w for w in self.landed if w < done.window - KEEP_LISTS]:
            del self.landed[old]

    async def _publish_as_leader(self, done: AppliedWindow) -> None:
        await publish_leader_documents(
            self.bucket,
            self.key,
            self.model,
            self.hp,
            done.window,
            done.peers,
            [b or b"" for b in done.blobs],
            done.fingerprint,
            force_checkpoint=not self.checkpoint_published,
        )
        self.checkpoint_published = True
        self.applier.in_sync, self.applier.fingerprint_ok = True, None

    async def _check_fingerprint(self, window: int, leader: str | None) -> None:
        """Compare with the leader's fingerprint now; on a mismatch re-sync at once."""
        if await self.applier.check_fingerprint(window, leader) is False:
            got = await self.applier.resync(window)  # the newest checkpoint: may be past it
            self.applier.in_sync = got is not None and got >= window
