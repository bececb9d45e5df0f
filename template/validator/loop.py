"""The validator: one window's work (``run_window``) and the loop that drives it from the chain.

``run_window(w)`` runs after window w's upload cut-off and does, in order:
  1. refresh the metagraph and bucket commitments; reset scores of replaced hotkeys;
  2. bring the model to "every aggregate through w - 1 applied" (leader's peer lists,
     the bootstrap rule where a leader published none, fingerprint check, catch-up);
  3. gather w's sealed uploads and open them with the keys revealed after the cut-off
     (gather.py, with watch.py's first-seen times), screen them without a
     model (screen.py: verify, replay, copies, mixes), measure a fair sample (sampling.py,
     measure.py), judge the evidence (judge.py);
  4. update scores (score.py), publish this validator's peer list (heartbeat); the leader first
     measures its list's whole outer step (step_check.py: none when it raises the loss), then
     applies it and publishes aggregate, fingerprint and checkpoints, a follower applies the
     leader's list when it appears;
  5. set weights when due; save the state; write the status file.
Nothing a peer sends can raise out of it: bad uploads become rejections. A window whose work
fails part way is retried with its evidence and scores restored (never counted twice); a
window whose aggregate the model already holds (caught up at start) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from template.chain.errors import ChainError
from template.chain.protocol import Chain
from template.hparams import HParams, hparams_hash
from template.node.status import write_status
from template.protocol.aggregation import clip_factors, upload_work
from template.protocol.catchup import current_leader
from template.protocol.directory import PeerDirectory
from template.protocol.documents import PeerList
from template.protocol.windows import WindowClock
from template.storage import StorageClient
from template.training.model import param_shapes
from template.training.offload import in_worker
from template.training.pages import PageDataset

from .args import ValidatorConfig
from .cache import WindowCache, blob_decoder
from .copies import Cluster, CopyRules, Print, window_salt
from .deadline import TimeLeft, measurements_stop, seconds_per_block, time_left
from .gather import MISSING, Candidate, fetch_uploads, uncommitted_miners
from .judge import Decision, Evidence, JudgeRules, judge_window, log_decisions
from .leader import choose_peers, publish_verdicts, window_verdicts
from .measure import Measurer, collect_measurements, measure_each, reference_uids
from .outcomes import RejectCode, Rejection
from .plan import plan_before_deadline
from .replay import ReplayMemory, replay_windows
from .sampling import longest_waiting_first, seconds_average
from .score import FullWorkMemory, Scoreboard, incentive_scores, window_values
from .screen import screen_window
from .stale import excuse_stale_harm
from .state import ValidatorState, save_state
from .status import validator_status
from .step_check import StepCheck, check_outer_step, vetted_list
from .sync import ValidatorSync
from .watch import FirstSeenLog, watch_uploads
from .weights import WeightsCheck, WeightsTracker, set_weights_when_due

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def each_in_worker(items: Iterator[T], stop_at: float | None = None) -> list[T]:
    """``items`` as a list, each produced in a worker thread (``training.offload``): the upload
    watcher keeps polling on the event loop while a window's uploads are measured (starved, it
    would first see the next window's uploads late, and they would be rejected as late). One
    item per call, so a task cancelled meanwhile stops after the item in hand. No item after
    the first starts once ``time.monotonic()`` has passed ``stop_at``."""
    out: list[T] = []
    end = object()
    while (item := await in_worker(next, items, end)) is not end:
        out.append(item)
        if stop_at is not None and time.monotonic() >= stop_at:
            break
    return out


@dataclass
class WindowReport:
    """What one window's work found (also the source of the status file)."""

    window: int
    leader: str | None = None
    is_leader: bool = False
    seen: int = 0
    valid: int = 0
    evaluated: list[int] = field(default_factory=list)
    rejected: dict[int, Rejection] = field(default_factory=dict)
    clusters: list[Cluster] = field(default_factory=list)  # near-duplicates, mix pairs: judge
    missing: list[int] = field(default_factory=list)
    values: dict[int, float] = field(default_factory=dict)
    decisions: dict[int, Decision] = field(default_factory=dict)  # the judge's, per uid
    peers: list[tuple[int, str]] = field(default_factory=list)
    step: StepCheck | None = None  # the leader's check of its list's outer step
    step_time: bool = True  # False: checking the step would have cost a measurement
    weights_set: bool = False
    seconds: float = 0.0


class Validator:
    """One validator, given its parts (``startup.prepare_validator`` builds and checks them)."""

    def __init__(
        self,
        *,
        chain: Chain,
        key,  # a bittensor Keypair: signs documents; the chain client signs with it too
        uid: int,
        hp: HParams,
        dataset: PageDataset,
        cfg: ValidatorConfig,
        state_dir: Path,
        state: ValidatorState,
        model: torch.nn.Module,
        directory: PeerDirectory,
        bucket: StorageClient,
        measurer: Measurer,
        secret: str,
        device: str = "cpu",
        metrics=None,
    ):
        self.chain, self.key, self.hp, self.dataset, self.cfg = chain, key, hp, dataset, cfg
        self.state_dir = Path(state_dir)
        self.device = device
        self.metrics = metrics
        self.clock = WindowClock(hp.window)
        self.run_hash = hparams_hash(hp)
        self.model, self.directory, self.bucket = model, directory, bucket
        self.shapes = param_shapes(model)
        self.state = state
        self.scores = Scoreboard(cfg.score_alpha, self.state.scores, self.state.hotkeys)
        self.full_work = FullWorkMemory(cfg.score_rate_memory, *(state.full_work or (None, None)))
        self.replays = ReplayMemory(replay_windows(hp, cfg.replay_windows), self.state.digests)
        self.first_seen = FirstSeenLog()  # the validator's own clock (watch.py)
        self.copy_rules = CopyRules(overlap=cfg.copy_overlap, similarity=cfg.copy_similarity)
        self.measurer = measurer
        self.secret = secret  # seeds the copy sketches (secret.py); the measurer holds it too
        self.evidence = Evidence(dict(state.evidence_s), dict(state.evidence_v))
        self.judge_rules = JudgeRules(
            cfg.judge_alpha, cfg.judge_memory, cfg.judge_harm_z, cfg.judge_lean_z
        )
        self.sync = ValidatorSync(
            hp,
            chain,
            key,
            directory,
            bucket,
            model,
            state,
            follow_wait=cfg.leader_follow_wait,
            held=self._held_upload,
            on_change=measurer.forget,
        )
        self.uid: int | None = uid
        self.cache = WindowCache(secret, self.copy_rules, blob_decoder(hp, self.shapes))
        self.restored_peers = dict(state.peers)  # the peers of the window before a restart
        self.last_report: WindowReport | None = None
        self.weights_tracker = WeightsTracker()  # sends verified after the reveal delay
        self.weights_check: WeightsCheck | None = None
        self.started_at = time.time()
        # seconds of a window's measuring work besides the measurements (clip factors, the
        # control losses before): the leader's plan leaves room for it (deadline.py)
        self.measure_overhead: float | None = None
        self.step_check_seconds: float | None = None  # the leader's step check (step_check.py)
        self._stamps: dict[int, float] = {}  # block -> timestamp (_past_block_timestamp)

    @property
    def hotkey(self) -> str:
        return self.key.ss58_address

    @property
    def in_sync(self) -> bool:
        return self.sync.applier.in_sync

    @property
    def fingerprint_ok(self) -> bool | None:
        return self.sync.applier.fingerprint_ok

    async def close(self) -> None:
        await self.directory.close()
        await self.bucket.close()

    def _held_upload(self, window: int, uid: int, hotkey: str):
        """This validator's gather of ``window`` (blob, LastModified), when it has one."""
        c = self.cache.candidate(window, uid)
        if c is None or c.hotkey != hotkey:
            return None
        return c.blob, c.last_modified

    # --- one window -------------------------------------------------------------------------
    async def _past_block_timestamp(self, block: int) -> float:
        """A produced block's timestamp, read once: the gather and the leader's deadline both
        need the window's first and cut-off blocks (a read is a chain round trip or two)."""
        if block not in self._stamps:
            self._stamps = {
                b: t for b, t in self._stamps.items() if b > block - 4 * self.clock.length
            }
            self._stamps[block] = await self.chain.block_timestamp(block)
        return self._stamps[block]

    async def _gather(self, window: int) -> list[Candidate]:
        open_ts = await self._past_block_timestamp(self.clock.start(window))
        cutoff_ts = await self._past_block_timestamp(self.clock.upload_cutoff(window))
        miners = [(u, h) for u, h in self.directory.miners() if h != self.hotkey]
        await self.first_seen.wait_closed(window, timeout=self.cfg.gather_time_budget)
        fetched = await fetch_uploads(
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
            watch=self.first_seen.get(window),
            reveal_wait=functools.partial(self._await_reveals, window),
        )
        registered = {n.uid: n.hotkey for n in self.directory.metagraph.neurons}
        gone = uncommitted_miners(
            self.scores.hotkeys,  # every uid with a score (Scoreboard keeps the two together)
            registered,
            {u for u, _ in miners},
            {*self.directory.validators(), self.hotkey},
        )
        return fetched + gone

    async def _recall(self, window: int) -> None:
        """On the first window after a (re)start: gather ``window`` (the last one) once, so the
        stale-copy and last-aggregate checks have its uploads (they lived in memory) and the
        aggregate is applied from the blobs held. Its keys are out: no waiting."""
        if self.cache or window < 0:
            return
        candidates = await self._gather(window)
        self.cache.keep(window, candidates)
        await in_worker(self.cache.release, window, self._last_peers(window + 1))
        held = sum(1 for c in candidates if c.reason is None and c.blob is not None)
        logger.info("window %d: recalled %d uploads after a start", window, held)

    async def _await_reveals(self, window: int) -> bool:
        """Between looks for missing seal keys: False once the reveal deadline has passed."""
        if await self.chain.block() >= self.clock.reveal_deadline(window):
            return False
        await asyncio.sleep(min(1.0, max(0.1, self.sync.applier.poll_s() / 2)))
        return True

    async def _check(
        self, window: int, candidates: list[Candidate], report: WindowReport
    ) -> tuple[list[Candidate], dict[int, Print]]:
        """The anti-cheat checks that need no model, in a worker thread (the watcher runs
        meanwhile); returns the candidates still standing and every decoded upload's print
        (the window cache keeps them)."""
        decoded = [c for c in candidates if c.upload is not None]
        for c in candidates:
            if c.reason == MISSING:
                report.missing.append(c.uid)
            elif c.reason is not None:
                report.rejected[c.uid] = c.reason
        peers = self._last_peers(window)
        screening = await in_worker(
            screen_window,
            window,
            {c.uid: c.upload for c in decoded},
            layout=self.dataset.layout,
            replays=self.replays,
            rules=self.copy_rules,
            salt=window_salt(self.secret, window),
            sightings={c.uid: c.sighting for c in decoded if c.sighting is not None},
            aggregate=self.cache.aggregate(window),
            freerider_min_norm=self.cfg.freerider_min_norm,
            page_budget=self.hp.pages_per_window,
            trusted=peers,
            earlier=self.cache.earlier(window),
            proven=self._proven(c.uid for c in decoded),
        )
        for uid, why in screening.rejected.items():
            report.rejected.setdefault(uid, why)
        report.clusters = screening.clusters
        return [c for c in decoded if c.uid not in report.rejected], screening.prints

    def _proven(self, uids: Iterable[int]) -> set[int]:
        """The ``uids`` whose training evidence passes the judge's bar (before this window's
        is added): the mix check's pairs, and one tier of the measurement's crowd."""
        return self._evidence_at_least(uids, self.judge_rules.z_proof)

    def _evidence_at_least(self, uids: Iterable[int], bar: float) -> set[int]:
        """The ``uids`` whose training evidence before this window's is at least ``bar``."""
        return {u for u in uids if self.evidence.z(u) >= bar}

    def _crowd(self, uids: Collection[int]) -> set[int]:
        """The uids whose uploads make the measurement's reference (``reference_uids``): those
        with full-pay evidence once two upload, else the proven once two upload, else those
        leaning towards a proof (``JudgeRules.lean_z``) once two upload, else every one. A
        non-trainer (a shadow) passes the bar by chance at rate alpha per window, but almost
        never reaches full pay: once two uids have, its chance crossings keep it out of its
        victim's reference."""
        rules = self.judge_rules
        bars = (rules.z_full_pay, rules.z_proof, rules.lean_z)
        return reference_uids(uids, *(self._evidence_at_least(uids, z) for z in bars))

    def _last_peers(self, window: int) -> list[int]:
        """The uids of this validator's own peer list of ``window - 1`` (proven trainers: the
        last aggregate, the mix check's baseline and the clip's median come from them); after a
        restart, the list saved in the state (without it a crowd's first window fell back to
        the quartile mix bar, which flags honest uploads: docs/scoring.md, "Mixes")."""
        own = self.sync.own_lists.get(window - 1)
        if own:
            return [u for u, _ in own.peers]
        return list(self.restored_peers.get(window - 1, []))

    async def _time_before_list_due(self, window: int, is_leader: bool) -> TimeLeft:
        """The leader's time left before its peer list of ``window`` is due (deadline.py); no
        limit for a follower, with ``--no-eval.meet-deadline``, or when the chain's block time
        is unknown."""
        if not (is_leader and self.cfg.eval_meet_deadline):
            return TimeLeft()
        first, last = self.clock.start(window), self.clock.upload_cutoff(window)
        try:
            first_ts = await self._past_block_timestamp(first)
            last_ts = await self._past_block_timestamp(last)
            block = await self.chain.block()
        except ChainError as e:  # the chain unreadable: no deadline known, none enforced
            logger.warning("window %d: no block time to plan the evaluation by: %s", window, e)
            return TimeLeft()
        per_block = seconds_per_block(first, first_ts, last, last_ts)
        return time_left(self.clock, window, block, per_block)

    def _plan_inputs(self) -> dict:
        """What ``plan.plan_evaluation`` reads of this validator: its flags, rules and memory."""
        return dict(
            cfg=self.cfg,
            rules=self.judge_rules,
            evidence_z=self.evidence.z,
            last_evaluated=self.state.last_evaluated,
            seconds_per_eval=self.state.eval_seconds,
        )

    async def _measure_and_judge(
        self, window: int, standing: list[Candidate], report: WindowReport
    ) -> None:
        """Measure a fair sample of the standing uploads (measure.py) and judge them
        (judge.py): ``report.decisions`` gets one decision per standing uid."""
        left = await self._time_before_list_due(window, report.is_leader)
        started = time.monotonic()
        # the rest of the window's work before the list: the measuring overhead, and the
        # step check after the judge (out of the boosts' time only, never a measurement's)
        chosen, boosted, report.step_time = plan_before_deadline(
            [c.uid for c in standing],
            window,
            left,
            self.measure_overhead,
            self.step_check_seconds,
            **self._plan_inputs(),
        )
        reserve = (self.measure_overhead or 0.0) + (
            (self.step_check_seconds or 0.0) if report.step_time else 0.0
        )
        by_uid = {c.uid: c for c in standing}
        # Weigh by the miners uploading lately, not only this window's: one miner's outage must
        # not make another's honest upload look harmful (a lone upload at the full outer lr).
        active = self.cache.active()
        n = max(1, min(len(active | set(by_uid)), self.hp.window.peers_per_window))
        scale = self.cfg.eval_lr_scale * self.hp.outer.lr / n
        uploads = {c.uid: c.upload for c in standing}
        near = {u: c.uids for c in report.clusters for u in c.uids}
        # as the outer step (dequantises every upload: a worker thread, as the other steps)
        clip = await in_worker(clip_factors, uploads, self.hp, self._last_peers(window))
        boost = self.cfg.eval_boost
        crowd = self._crowd(uploads)
        # the longest-waiting first: should the leader's last moment come, the rest go first
        # next window (the plan's estimate was wrong)
        order = longest_waiting_first(chosen, self.state.last_evaluated, window)
        each = measure_each(
            self.measurer, window, uploads, order, scale, near, clip, boosted, boost, crowd
        )
        untimed = self.state.eval_seconds is None  # a new validator: no measurement timed yet
        stop_at = measurements_stop(started, left, self.state.eval_seconds, reserve)
        measured, failed, seconds = collect_measurements(await each_in_worker(each, stop_at))
        overhead = max(0.0, time.monotonic() - started - sum(seconds.values()))
        self.measure_overhead = seconds_average(self.measure_overhead, overhead)
        unmeasured = [u for u in order if u not in measured and u not in failed]
        if unmeasured and untimed:
            logger.info(
                "window %d: uids %s not measured: no measurement was timed before, so the "
                "leader measured until its peer list was due on time; they go first next window",
                window,
                unmeasured,
            )
        elif unmeasured:
            logger.warning(
                "window %d: uids %s not measured: the peer list would have been too late "
                "(give the validator more cores or time)",
                window,
                unmeasured,
            )
        for uid, why in failed.items():
            report.rejected[uid] = Rejection(RejectCode.EVAL_FAILED, why)
        for uid, dt in sorted(seconds.items()):
            # seconds of an unboosted evaluation: what the time budget divides by
            dt /= measured[uid].cost_over_unboosted(
                self.cfg.eval_own_seqs, self.cfg.eval_control_seqs
            )
            self.state.eval_seconds = seconds_average(self.state.eval_seconds, dt)
            self.state.last_evaluated[uid] = window
            report.evaluated.append(uid)
        clusters = [c.undecided for c in report.clusters]
        work = {c.uid: upload_work(c.upload, self.hp) for c in standing}
        report.decisions = judge_window(
            measured, clusters, self.evidence, self.judge_rules, work, boosted
        )
        for c in standing:
            if c.uid not in report.decisions and c.uid not in report.rejected:
                report.decisions[c.uid] = Decision(c.uid, "not_evaluated")
        log_decisions(window, report.decisions)

    async def run_window(self, window: int) -> WindowReport:
        """All of one window's validator work (call after block upload_cutoff(window))."""
        t0 = time.perf_counter()
        report = WindowReport(window)
        if self.state.applied_through is not None and self.state.applied_through >= window:
            # started after the leader published this window's aggregate and caught up through
            # it: its uploads cannot be measured on a model that already holds them
            logger.info(
                "window %d: the model already holds its aggregate; nothing to judge", window
            )
            self.state.window = window
            await in_worker(save_state, self.state_dir, self.state, self.model)
            return report
        metagraph = await self.directory.refresh()
        for uid in self.scores.sync_hotkeys(metagraph):
            self.state.last_evaluated.pop(uid, None)
            self.evidence.forget(uid)
            logger.info("uid %d has a new hotkey: score reset", uid)
        leader = await current_leader(self.directory, window, self.hp)
        report.leader, report.is_leader = leader, leader == self.hotkey
        await self._recall(window - 1)
        await self.sync.advance_to(window - 1)  # sync.py: the shared window-apply path

        candidates = await self._gather(window)
        report.seen = sum(1 for c in candidates if c.reason != MISSING)
        with self._undone_on_failure():  # a retried window must not count twice
            await self._judge_and_settle(window, candidates, leader, metagraph, report)
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

    @contextlib.contextmanager
    def _undone_on_failure(self):
        """Restore the evidence, scores, rotation and remembered full-work rate when a window's
        work fails part way: the loop retries the window, which would otherwise count its
        evidence and values again."""
        kept = [
            (d, dict(d))
            for d in (
                self.evidence.s,
                self.evidence.v,
                self.scores.scores,
                self.scores.hotkeys,
                self.state.last_evaluated,
            )
        ]
        eval_seconds = self.state.eval_seconds
        full_work = (self.full_work.window, self.full_work.rate)
        try:
            yield
        except BaseException:
            for d, before in kept:
                d.clear()
                d.update(before)
            self.state.eval_seconds = eval_seconds
            self.full_work.window, self.full_work.rate = full_work
            raise

    async def _judge_and_settle(
        self, window: int, candidates: list[Candidate], leader, metagraph, report: WindowReport
    ) -> None:
        """Screen, measure and judge ``candidates``, score them, settle the window (publish,
        lead or follow), set weights when due and save the state."""
        standing, prints = await self._check(window, candidates, report)
        await self._measure_and_judge(window, standing, report)
        report.decisions = excuse_stale_harm(window, report.decisions, self.sync.landed, self.clock)
        for uid, d in report.decisions.items():
            if d.rejection is not None:
                report.rejected[uid] = d.rejection
        for uid, why in report.rejected.items():
            if uid not in report.decisions:
                logger.info("window %d: uid %d: rejected (%s)", window, uid, why)
        report.valid = sum(1 for c in standing if c.uid not in report.rejected)
        # the earlier stages' outcomes: no upload found, or rejected before the judge
        unjudged = {**{u: MISSING for u in report.missing}, **report.rejected}
        report.values = window_values(
            report.decisions,
            unjudged,
            invalid_penalty=self.cfg.score_invalid_penalty,
            missing_penalty=self.cfg.score_missing_penalty,
            recent_rate=self.full_work.recent(window),
        )
        self.full_work.note(window, report.decisions, report.values)
        hotkey_of = {c.uid: c.hotkey for c in candidates}
        for uid, v in report.values.items():
            self.scores.update(uid, hotkey_of[uid], v)
        self.cache.keep(window, candidates)

        hotkeys = {c.uid: c.hotkey for c in standing}
        doc = choose_peers(
            window, self.scores.scores, report.decisions, hotkeys, self.hp, self.judge_rules
        )
        if report.is_leader:
            doc = await self._checked_step(window, doc, standing, report)
        report.peers = list(doc.peers)
        try:
            await self.sync.settle(window, doc, leader)  # publish, then lead or follow
        finally:  # the next window's mix reference is this validator's list, as settled
            await in_worker(self.cache.release, window, self._last_peers(window + 1), prints)
        # after the list (not to delay it): why each miner was or was not paid, for the miners
        verdicts = window_verdicts(
            window, hotkey_of, report.decisions, unjudged, report.values, self.hp
        )
        await publish_verdicts(self.bucket, verdicts, self.key)

        report.weights_set = await self._set_weights(window, metagraph)
        self.state.window = window
        self.state.scores = dict(self.scores.scores)
        self.state.hotkeys = dict(self.scores.hotkeys)
        self.state.digests = dict(self.replays.seen)
        self.state.evidence_s, self.state.evidence_v = dict(self.evidence.s), dict(self.evidence.v)
        self.state.peers = {window: [u for u, _ in doc.peers]}
        if self.full_work.window is not None and self.full_work.rate is not None:
            self.state.full_work = (self.full_work.window, self.full_work.rate)
        await in_worker(save_state, self.state_dir, self.state, self.model)

    async def _checked_step(
        self, window: int, doc: PeerList, standing: list[Candidate], report: WindowReport
    ) -> PeerList:
        """The leader's list, or an empty one when its outer step would raise the control
        loss (step_check.py): the model then stays as it is this window. Unchecked when the
        check's time would have cost a measurement (``report.step_time``)."""
        if not report.step_time and doc.peers:
            logger.info(
                "window %d: no time to check the outer step without measuring fewer uploads: "
                "publishing it unchecked",
                window,
            )
            return doc
        by_uid = {c.uid: c.upload for c in standing}
        peers = [by_uid[u] for u, _ in doc.peers if u in by_uid]
        started = time.monotonic()
        report.step = await in_worker(
            check_outer_step,
            self.measurer,
            window,
            peers,
            self.hp,
            self.shapes,
            self.judge_rules.harm_z,
        )
        if report.step is not None:  # the next window's plan leaves room for it
            spent = time.monotonic() - started
            self.step_check_seconds = seconds_average(self.step_check_seconds, spent)
        return vetted_list(doc, report.step)

    async def _set_weights(self, window: int, metagraph) -> bool:
        validators = set(self.directory.validators())
        exclude = {n.uid for n in metagraph.neurons if n.hotkey in validators}
        exclude.add(self.uid if self.uid is not None else -1)
        sent, check = await set_weights_when_due(
            self.chain,
            self.weights_tracker,
            window=window,
            own_uid=self.uid,
            scores=incentive_scores(self.scores.scores, exclude=exclude),
            uids=[n.uid for n in metagraph.neurons],
            exclude=exclude,
            last_weights_block=self.state.last_weights_block,
            every=self.cfg.weights_every,
        )
        self.weights_check = check or self.weights_check
        if sent is None:
            return False
        self.state.weights = sent.weights
        self.state.weights_set += 1
        self.state.last_weights_block = sent.block
        return True

    def _write_status(self, report: WindowReport, block: int) -> None:
        status = validator_status(self, report, block)
        write_status(self.state_dir, status)
        if self.metrics is not None:
            self.metrics.set_status(status)

    # --- forever ------------------------------------------------------------------------------
    async def run(self, max_windows: int = 0, should_stop=lambda: False) -> None:
        """Process every window after its upload cut-off; errors are logged, never fatal.
        A background watcher records when each upload is first seen (``watch.py``)."""
        watcher = asyncio.ensure_future(
            watch_uploads(
                self.first_seen,
                self.chain,
                self.clock,
                self.directory,
                lambda: [(u, h) for u, h in self.directory.miners() if h != self.hotkey],
                concurrency=self.cfg.gather_concurrency,
            )
        )
        try:
            await self._run_windows(max_windows, should_stop)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _run_windows(self, max_windows: int, should_stop) -> None:
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
