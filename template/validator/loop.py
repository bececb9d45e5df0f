"""The validator: one window's work (``run_window``) and the loop that drives it from the chain.

``run_window(w)`` runs after window w's upload cut-off and does, in order:
  1. refresh the metagraph and bucket commitments; reset scores of replaced hotkeys;
  2. bring the model to "every aggregate through w - 1 applied" (leader's peer lists,
     the bootstrap rule where a leader published none, fingerprint check, catch-up);
  3. gather w's uploads with the pre-evaluation checks (gather.py), then the anti-cheat
     checks (checks.py), then evaluate a fair sample of the rest (evaluate.py);
  4. update scores, publish this validator's peer list (heartbeat); the leader also
     applies its selection and publishes aggregate, fingerprint and checkpoints, a follower
     applies the leader's list when it appears;
  5. set weights when due; save the state; write the status file.
Nothing a peer sends can raise out of it: bad uploads become rejections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from template.chain.protocol import Chain
from template.hparams import HParams, hparams_hash
from template.node.errors import StartupError
from template.node.status import write_status
from template.protocol.aggregation import apply_uploads, decode_peer_uploads
from template.protocol.catchup import catch_up, current_leader, fetch_fingerprint, fetch_peer_list
from template.protocol.directory import PeerDirectory
from template.protocol.documents import PeerList
from template.protocol.fingerprint import fingerprints_match, model_fingerprint
from template.protocol.selection import bootstrap_peers
from template.protocol.windows import WindowClock
from template.storage import (
    NodeStorageConfig,
    StorageClient,
    StorageError,
    encode_commitment,
    keys,
)
from template.training.model import build_model
from template.training.pages import PageDataset
from template.training.wire import upload_size_cap

from .args import ValidatorConfig
from .checks import (
    ReplayMemory,
    Submitted,
    content_digest,
    find_copies,
    free_riders,
    index_digest,
    page_claim_error,
    page_proof_error,
    page_proof_ratio,
    sync_error,
    update_page_proof,
    upload_norm,
)
from .evaluate import EvalResult, Evaluator
from .gather import MISSING, Candidate, fetch_uploads
from .leader import choose_peers, publish_leader_documents, publish_peer_list
from .sampling import choose_for_evaluation, evaluation_budget
from .scoring import Scoreboard, window_values
from .state import ValidatorState, load_state, save_state
from .status import validator_status
from .weights import (
    WeightsCheck,
    WeightsTracker,
    compute_weights,
    set_weights_with_retry,
    weights_due,
)

logger = logging.getLogger(__name__)

LATE_MARGIN_BLOCKS = 3  # a leader this close to its followers' deadline publishes no list
KEEP_WINDOWS = 3  # windows of gathered uploads kept in memory (to apply peer lists)


@dataclass
class WindowReport:
    """What one window's work found (also the source of the status file)."""

    window: int
    leader: str | None = None
    is_leader: bool = False
    seen: int = 0
    valid: int = 0
    evaluated: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    values: dict[int, float] = field(default_factory=dict)
    results: dict[int, EvalResult] = field(default_factory=dict)
    peers: list[tuple[int, str]] = field(default_factory=list)
    weights_set: bool = False
    seconds: float = 0.0


class Validator:
    def __init__(
        self,
        *,
        chain: Chain,
        hotkey,  # a bittensor Keypair: signs documents; the chain client signs with it too
        storage: NodeStorageConfig,
        hp: HParams,
        dataset: PageDataset,
        cfg: ValidatorConfig,
        state_dir: Path,
        device: str = "cpu",
        allow_private: bool = False,
        metrics=None,
    ):
        self.chain, self.key, self.hp, self.dataset, self.cfg = chain, hotkey, hp, dataset, cfg
        self.storage = storage
        self.state_dir = Path(state_dir)
        self.device = device
        self.metrics = metrics
        self.clock = WindowClock(hp.window)
        self.run_hash = hparams_hash(hp)
        self.model = build_model(hp.model, device)
        self.shapes = {n: tuple(p.shape) for n, p in self.model.named_parameters()}
        self.directory = PeerDirectory(chain, allow_private=allow_private)
        self.own = StorageClient(storage.write)
        self.state = load_state(self.state_dir, self.model, self.run_hash) or ValidatorState(
            hparams_hash=self.run_hash
        )
        self.scores = Scoreboard(cfg.score_alpha, self.state.scores, self.state.hotkeys)
        self.replays = ReplayMemory(cfg.replay_windows, self.state.digests)
        self.evaluator = Evaluator(
            self.model,
            dataset,
            hp,
            assigned_pages=cfg.eval_assigned_pages,
            heldout_pages=cfg.eval_heldout_pages,
            lr_scale=cfg.eval_lr_scale,
            salt=self.hotkey,
            device=device,
        )
        self.uid: int | None = None
        self.cache: dict[int, dict[int, Candidate]] = {}
        self.own_lists: dict[int, PeerList] = {}
        self.in_sync = True
        self.fingerprint_ok: bool | None = None
        self.peers_applied = 0
        self.checkpoint_published = False
        self.last_report: WindowReport | None = None
        self.weights_tracker = WeightsTracker()  # sends verified after the reveal delay
        self.weights_check: WeightsCheck | None = None
        self.started_at = time.time()

    @property
    def hotkey(self) -> str:
        return self.key.ss58_address

    # --- start-up -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start-up checks (StartupError names the fix), commitment, initial model position."""
        netuid = self.chain.netuid
        self.uid = await self.chain.uid_of(self.hotkey)
        if self.uid is None:
            raise StartupError(
                f"hotkey {self.hotkey} is not registered on subnet {netuid}: run "
                f"'btcli subnets register --netuid {netuid}' with this wallet first"
            )
        try:
            await self.own.create_bucket()
        except StorageError as e:
            logger.debug("create_bucket: %s (it probably exists)", e)
        published = self.storage.read or self.storage.write
        if self.storage.read is None and not self.directory.allow_private:
            raise StartupError(
                "no read-only keys for the bucket: set TEMPLATE_S3_READ_ACCESS_KEY_ID and "
                "TEMPLATE_S3_READ_SECRET_ACCESS_KEY (write keys are never published)"
            )
        try:
            wanted = encode_commitment(published)
        except Exception as e:  # noqa: BLE001 - CommitmentError and bad configs
            raise StartupError(f"bucket cannot be committed on chain: {e}") from None
        current = (await self.chain.commitments()).get(self.hotkey)
        if current != wanted:
            await self.chain.commit(wanted)
            logger.info("published bucket commitment for %s", published.bucket)
        mg = await self.directory.refresh()
        me = mg.by_uid(self.uid)
        if me is None or not me.validator_permit:
            raise StartupError(
                f"uid {self.uid} has no validator permit on subnet {netuid}: stake to this hotkey "
                f"('btcli stake add --netuid {netuid}') until it is among the top validators by "
                "stake; permits are recomputed every tempo, then start again"
            )
        candidates = self.directory.validators()
        if candidates and candidates[0] != self.hotkey:
            rank = candidates.index(self.hotkey) + 1 if self.hotkey in candidates else "?"
            logger.warning(
                "this validator is not the leader candidate (stake rank %s); it will follow %s",
                rank,
                candidates[0][:10],
            )
        if self.state.applied_through is None:
            window = self.clock.window_of(await self.chain.block())
            got = await catch_up(
                self.model, self.directory, self.hp, applied_through=None, target=window - 1
            )
            if got is not None:
                self.state.applied_through = got
                logger.info("model caught up from the latest checkpoint to window %d", got)

    async def close(self) -> None:
        await self.directory.close()
        await self.own.close()

    # --- model position -------------------------------------------------------------------
    async def _blobs_for(self, window: int, peers) -> list[bytes | None]:
        cached = self.cache.get(window, {})
        cap = upload_size_cap(self.shapes, self.hp.compression)
        out: list[bytes | None] = []
        for uid, hk in peers:
            c = cached.get(uid)
            if c is not None and c.hotkey == hk and c.blob is not None:
                out.append(c.blob)
                continue
            client = self.directory.client(hk)
            try:
                out.append(
                    None
                    if client is None
                    else await client.get_bytes(keys.upload_key(hk, window), cap)
                )
            except StorageError:
                out.append(None)
        return out

    async def _apply_peers(self, window: int, peers) -> list[bytes | None]:
        """Apply ``peers``' uploads of ``window`` (missing/invalid ones skipped, as everywhere)."""
        blobs = await self._blobs_for(window, peers)
        uploads = decode_peer_uploads(blobs, list(peers), window, self.hp, self.shapes)
        self.peers_applied = apply_uploads(self.model, uploads, self.hp)
        self.evaluator.forget()
        self.state.applied_through = window
        return blobs

    async def _lead(self, window: int, peers) -> None:
        """Leader: apply ``peers`` then publish the aggregate, fingerprint and checkpoints."""
        blobs = await self._apply_peers(window, peers)
        await publish_leader_documents(
            self.own,
            self.key,
            self.model,
            self.hp,
            window,
            list(peers),
            [b or b"" for b in blobs],
            force_checkpoint=not self.checkpoint_published,
        )
        self.checkpoint_published = True
        self.in_sync, self.fingerprint_ok = True, None

    async def _bootstrap_list(self, window: int) -> list[tuple[int, str]]:
        """The bootstrap rule on this node's own gather of ``window``: lowest valid uids."""
        cands = self.cache.get(window)
        if cands is None:
            got = await self._gather(window)
            cands = {c.uid: c for c in got}
        valid = {u: c.hotkey for u, c in cands.items() if c.ok}
        return bootstrap_peers(valid, self.hp.window.peers_per_window)

    async def _check_fingerprint(self, window: int, leader: str) -> None:
        fp = await fetch_fingerprint(self.directory, leader, window, self.hp)
        if fp is None:
            logger.debug("no fingerprint of window %d from the leader", window)
            return
        if fingerprints_match(model_fingerprint(self.model), fp.values):
            self.fingerprint_ok, self.in_sync = True, True
            return
        logger.warning(
            "model differs from the leader's fingerprint of window %d: re-syncing", window
        )
        self.fingerprint_ok = False
        got = await catch_up(
            self.model, self.directory, self.hp, applied_through=None, target=window
        )
        self.evaluator.forget()
        self.in_sync = got == window
        if got is not None:
            self.state.applied_through = got

    async def _apply_window(self, window: int, leader: str | None, *, bootstrap: bool) -> bool:
        """Apply ``window``'s aggregate from the leader's peer list (or the bootstrap rule)."""
        doc = None
        if leader == self.hotkey:
            doc = self.own_lists.get(window)
        elif leader is not None:
            doc = await fetch_peer_list(self.directory, leader, window, self.hp)
        if doc is None and not bootstrap:
            return False
        peers = list(doc.peers) if doc is not None else await self._bootstrap_list(window)
        if leader == self.hotkey:
            await self._lead(window, peers)  # aggregates of every window keep catch-up whole
            return True
        await self._apply_peers(window, peers)
        if doc is not None and leader is not None and leader != self.hotkey:
            await self._check_fingerprint(window, leader)
        return True

    async def _advance_to(self, target: int, leader: str | None) -> None:
        if self.state.applied_through is None:
            self.state.applied_through = target  # fresh subnet: the initial model is current
            return
        for w in range(self.state.applied_through + 1, target + 1):
            await self._apply_window(w, leader, bootstrap=True)

    # --- one window -------------------------------------------------------------------------
    async def _gather(self, window: int) -> list[Candidate]:
        open_ts = await self.chain.block_timestamp(self.clock.start(window))
        cutoff_ts = await self.chain.block_timestamp(self.clock.upload_cutoff(window))
        miners = [(u, h) for u, h in self.directory.miners() if h != self.hotkey]
        return await fetch_uploads(
            self.directory,
            miners,
            window,
            self.hp,
            self.shapes,
            open_ts=open_ts,
            cutoff_ts=cutoff_ts,
            skew=self.cfg.gather_clock_skew,
            concurrency=self.cfg.gather_concurrency,
            time_budget=self.cfg.gather_time_budget,
        )

    def _check(self, window: int, cands: list[Candidate], report: WindowReport) -> list[Candidate]:
        """The anti-cheat checks that need no model; returns the candidates still standing."""
        decoded = [c for c in cands if c.upload is not None]
        for c in cands:
            if c.reason == MISSING:
                report.missing.append(c.uid)
            elif c.reason is not None:
                report.rejected[c.uid] = c.reason
        digests = {c.uid: (content_digest(c.upload), index_digest(c.upload)) for c in decoded}
        for c in decoded:
            err = page_claim_error(c.upload, self.dataset.layout, window, c.uid)
            err = err or self.replays.check(window, digests[c.uid])
            if err:
                report.rejected.setdefault(c.uid, err)
        copies = find_copies(
            [
                Submitted(c.uid, c.last_modified or 0.0, digests[c.uid][0], c.upload)
                for c in decoded
            ],
            overlap=self.cfg.copy_overlap,
            similarity=self.cfg.copy_similarity,
        )
        for uid, why in copies.items():
            report.rejected.setdefault(uid, why)
        standing = [c for c in decoded if c.uid not in report.rejected]
        lazy = free_riders(
            {c.uid: upload_norm(c.upload) for c in standing}, self.cfg.freerider_min_norm
        )
        for uid, why in lazy.items():
            report.rejected.setdefault(uid, why)
        for c in decoded:
            self.replays.remember(window, c.uid, digests[c.uid])
        return [c for c in standing if c.uid not in report.rejected]

    def _evaluate(
        self, window: int, standing: list[Candidate], report: WindowReport
    ) -> dict[int, float]:
        budget = evaluation_budget(
            self.cfg.eval_max_uploads, self.cfg.eval_time_budget, self.state.eval_seconds
        )
        chosen = choose_for_evaluation(
            [c.uid for c in standing], self.state.last_evaluated, budget, window
        )
        by_uid = {c.uid: c for c in standing}
        # Weigh by the miners uploading lately, not only this window's: one miner's outage must
        # not make another's honest upload look harmful (a lone upload at the full outer lr).
        active = {
            c.uid for held in self.cache.values() for c in held.values() if c.reason != MISSING
        }
        self.evaluator.set_upload_count(max(len(standing), len(active | set(by_uid))))
        gains: dict[int, float] = {}
        for uid in chosen:
            t0 = time.perf_counter()
            try:
                res = self.evaluator.evaluate(by_uid[uid].upload, window)
            except Exception as e:  # noqa: BLE001 - a hostile upload must not stop the window
                logger.warning("uid %d: evaluation failed: %s", uid, e)
                report.rejected[uid] = f"evaluation failed ({type(e).__name__})"
                continue
            dt = time.perf_counter() - t0
            prev = self.state.eval_seconds
            self.state.eval_seconds = dt if prev is None else 0.8 * prev + 0.2 * dt
            self.state.last_evaluated[uid] = window
            report.evaluated.append(uid)
            report.results[uid] = res
            err = sync_error(res.heldout_gain, res.heldout_before, self.cfg.eval_harm_tolerance)
            if err is None and res.heldout_gain > 0:
                proof = update_page_proof(
                    self.state.page_proof.get(uid),
                    page_proof_ratio(res.assigned_gain, res.heldout_gain),
                )
                seen = self.state.page_proof_n.get(uid, 0) + 1
                self.state.page_proof[uid], self.state.page_proof_n[uid] = proof, seen
                if seen >= self.cfg.eval_page_min_windows:
                    err = page_proof_error(proof, self.cfg.eval_page_margin)
            if err:
                report.rejected[uid] = err
            else:
                gains[uid] = res.heldout_gain
        return gains

    async def run_window(self, window: int) -> WindowReport:
        """All of one window's validator work (call after block upload_cutoff(window))."""
        t0 = time.perf_counter()
        report = WindowReport(window)
        mg = await self.directory.refresh()
        for uid in self.scores.sync_hotkeys(mg):
            self.state.last_evaluated.pop(uid, None)
            self.state.page_proof.pop(uid, None)
            self.state.page_proof_n.pop(uid, None)
            logger.info("uid %d has a new hotkey: score reset", uid)
        leader = await current_leader(self.directory, window, self.hp)
        report.leader, report.is_leader = leader, leader == self.hotkey
        await self._advance_to(window - 1, leader)

        cands = await self._gather(window)
        report.seen = sum(1 for c in cands if c.reason != MISSING)
        standing = self._check(window, cands, report)
        gains = self._evaluate(window, standing, report)
        report.valid = len(gains) + sum(1 for c in standing if c.uid not in report.results)
        report.values = window_values(
            gains,
            {u: r for u, r in report.rejected.items()},
            report.missing,
            invalid_penalty=self.cfg.score_invalid_penalty,
            missing_penalty=self.cfg.score_missing_penalty,
        )
        hotkey_of = {c.uid: c.hotkey for c in cands}
        for uid, v in report.values.items():
            self.scores.update(uid, hotkey_of[uid], v)
        self.cache[window] = {c.uid: c for c in cands}
        for old in [w for w in self.cache if w <= window - KEEP_WINDOWS]:
            del self.cache[old]

        valid = {c.uid: c.hotkey for c in standing if c.uid not in report.rejected}
        doc = choose_peers(window, self.scores.scores, valid, self.hp)
        report.peers = list(doc.peers)
        self.own_lists = {w: d for w, d in self.own_lists.items() if w > window - KEEP_WINDOWS}
        self.own_lists[window] = doc
        if report.is_leader and await self._too_late_to_lead(window):
            del self.own_lists[window]  # followers applied the bootstrap rule: so does the leader
            await self._apply_window(window, leader, bootstrap=True)
        else:
            await publish_peer_list(self.own, doc, self.key)
            if report.is_leader:
                await self._lead(window, doc.peers)
            else:
                await self._follow(window, leader)

        report.weights_set = await self._maybe_set_weights(window, mg)
        self.state.window = window
        self.state.scores = dict(self.scores.scores)
        self.state.hotkeys = dict(self.scores.hotkeys)
        self.state.digests = dict(self.replays.seen)
        save_state(self.state_dir, self.state, self.model)
        report.seconds = time.perf_counter() - t0
        self.last_report = report
        self._write_status(report, await self.chain.block())
        logger.info(
            "window %d: %d uploads, %d valid, %d evaluated, %d rejected, %d peers, leader=%s (%.1fs)",
            window,
            report.seen,
            report.valid,
            len(report.evaluated),
            len(report.rejected),
            len(report.peers),
            report.is_leader,
            report.seconds,
        )
        return report

    async def _too_late_to_lead(self, window: int) -> bool:
        """Followers wait for the leader's list of ``window`` until ``end(window + 1)``, then
        apply the bootstrap rule. A list published after that (a leader slow or just restarted)
        would split the subnet: miners on the bootstrap set, the leader on its own list, and
        every honest upload of the next window would look out of sync to the leader."""
        late = await self.chain.block() >= self.clock.end(window + 1) - LATE_MARGIN_BLOCKS
        if late:
            logger.warning(
                "window %d: too late for a peer list (followers applied the bootstrap rule); "
                "applying the bootstrap rule as they did",
                window,
            )
        return late

    async def _follow(self, window: int, leader: str | None) -> None:
        """Apply the leader's peer list for ``window`` once it is out (bounded wait)."""
        deadline = time.monotonic() + self.cfg.leader_follow_wait
        while True:
            if await self._apply_window(window, leader, bootstrap=False):
                return
            block = await self.chain.block()
            if time.monotonic() >= deadline or block >= self.clock.publish_deadline(window):
                logger.info("no peer list from the leader for window %d yet; applied later", window)
                return
            await asyncio.sleep(1.0)

    async def _maybe_set_weights(self, window: int, mg) -> bool:
        try:
            params = await self.chain.subnet_params()
            block = await self.chain.block()
        except Exception as e:  # noqa: BLE001 - retried next window
            logger.warning("could not read subnet params: %s", e)
            return False
        await self._check_weights_landed(block)
        if not weights_due(
            block, self.state.last_weights_block, window, params, self.cfg.weights_every
        ):
            return False
        exclude = {n.uid for n in mg.neurons if n.hotkey in set(self.directory.validators())}
        exclude.add(self.uid if self.uid is not None else -1)
        weights = compute_weights(
            self.scores.scores, [n.uid for n in mg.neurons], params, exclude=exclude
        )
        if not weights:
            logger.info("window %d: no miner has a positive score; weights not set", window)
            return False
        res = await set_weights_with_retry(self.chain, weights)
        if not res.success:
            logger.warning(
                "window %d: set_weights failed (%s); retrying next window", window, res.message
            )
            return False
        self.state.weights = dict(weights)
        self.state.weights_set += 1
        self.state.last_weights_block = res.block if res.block is not None else block
        self.weights_tracker.sent(weights, self.state.last_weights_block, params)
        return True

    async def _check_weights_landed(self, block: int) -> None:
        """Once the reveal delay has passed, check the last weights are in force; warn if not."""
        if self.uid is None:
            return
        check = await self.weights_tracker.check(self.chain, self.uid, block)
        if check is not None:
            self.weights_check = check
            (logger.info if check.landed else logger.warning)("weights check: %s", check.message)

    def status(self, report: WindowReport, block: int) -> dict:
        return validator_status(self, report, block)

    def _write_status(self, report: WindowReport, block: int) -> None:
        status = self.status(report, block)
        write_status(self.state_dir, status)
        if self.metrics is not None:
            self.metrics.set(
                window=report.window,
                block=block,
                heldout_loss=status["heldout_loss"],
                in_sync=self.in_sync,
                is_leader=report.is_leader,
                weights_set=self.state.weights_set,
            )
            self.metrics.set_by_uid("score", self.scores.scores)
            self.metrics.set_by_uid("weight", self.state.weights)

    # --- forever ------------------------------------------------------------------------------
    async def run(self, max_windows: int = 0, should_stop=lambda: False) -> None:
        """Process every window after its upload cut-off; errors are logged, never fatal."""
        done = 0
        while not should_stop() and (max_windows <= 0 or done < max_windows):
            try:
                block = await self.chain.block()
                w = self.clock.window_of(block)
                target = w - 1 if block >= self.clock.upload_cutoff(w - 1) else w - 2
                if target <= self.state.window or target < 0:
                    nxt = max(self.state.window + 1, target + 1, 0)
                    await self.chain.wait_for_block(self.clock.upload_cutoff(nxt), timeout=600)
                    continue
                await self.run_window(target)
                done += 1
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:  # noqa: BLE001 - the loop must keep going
                logger.exception("window work failed; retrying shortly")
                await asyncio.sleep(2.0)
