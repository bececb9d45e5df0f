"""The miner's window loop: training in a worker thread, everything else on the event loop.

    window w:   [ wait for w-1's aggregate | train H steps on w's pages (thread) | idle ]
    event loop:   compress/sign/upload w-1 | apply aggregate of w-1 | save

A window's work is H (train.inner_steps) steps on its pages_per_window pages. They start once
``Sync`` (sync.py) has applied the previous window's aggregate, or at the leader's publish
deadline without it (the aggregate is then applied between steps when it comes). The delta
goes to a background task (``finish_window``: compress with error feedback, record what was
sent (sent_records.py), sign, seal and upload before the deadline, save the local state, write
the status file). Once the upload cut-off has passed, ``reveal`` publishes the key that opens
the sealed upload (seal.py).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from template.chain.protocol import Chain
from template.hparams import HParams, hparams_hash
from template.node.metrics import Metrics
from template.node.status import MinerStatus, write_status
from template.protocol.windows import WindowClock
from template.storage import StorageClient, StorageError, keys
from template.training.compression import Compressor
from template.training.offload import in_worker
from template.training.seal import seal_upload
from template.training.wire import encode_upload

from . import seal_keys, sent_records
from .clock import BlockClock
from .landing import Fate, upload_fate
from .state import Position, Snapshot, optimizer_tensors, save_state
from .sync import Sync
from .trainer import Trainer, WindowResult
from .verdicts import log_verdicts, read_own_verdicts

logger = logging.getLogger(__name__)

FINISH_TIMEOUT_S = 30.0  # how long shutdown waits for the last upload and save
# After SIGTERM the process exits within this many seconds whatever it waits on (the last upload
# plus storage threads blocked in a socket read on a slow bucket could add up past the 40 s a
# supervisor gives); if it has to cut it short it first dumps every thread's stack to the log.
STOP_LIMIT_S = 35.0


def arm_shutdown_watchdog() -> None:
    """Bound a signalled shutdown: after STOP_LIMIT_S, dump every thread's stack and exit 1.

    Process-wide (it ends the interpreter), so only the entry points' signal handlers call it,
    never a Miner embedded in another program or a test.
    """
    faulthandler.dump_traceback_later(STOP_LIMIT_S, exit=True)


@dataclass
class MinerSettings:
    hp: HParams
    uid: int
    state_dir: Path
    max_windows: int = 0  # 0: forever


@dataclass
class Stats:
    """The last window's figures, for the status file and the summary line."""

    window: int = -1
    loss: float = math.nan
    tokens_per_s: float = 0.0
    upload_bytes: int = 0
    upload_seconds: float = 0.0
    steps: int = 0
    pages: int = 0
    uploaded: bool = False


class Miner:
    def __init__(
        self,
        settings: MinerSettings,
        *,
        chain: Chain,
        key,
        bucket: StorageClient,
        trainer: Trainer,
        clock: BlockClock,
        sync: Sync,
        position: Position,
        compressor: Compressor,
        metrics: Metrics | None = None,
    ):
        self.settings, self.chain, self.key, self.bucket = settings, chain, key, bucket
        self.trainer, self.clock, self.sync = trainer, clock, sync
        self.position, self.compressor = position, compressor
        self.metrics = metrics or Metrics()
        self.windows = WindowClock(settings.hp.window)
        self.run_hash = hparams_hash(settings.hp)
        self.stats = Stats()
        self._stop = asyncio.Event()
        self._train_base = position.train_seconds_total
        self._wall_base = position.wall_seconds_total
        self._t0: float | None = None
        self._train_run = 0.0
        self._seal: tuple[int, bytes] | None = None  # (window, key) of the last sealed upload
        self._reveals: set[asyncio.Task] = set()
        self._news: set[asyncio.Task] = set()  # verdict reads: nothing waits for them
        # (window, validator hotkey -> its verdict on this miner's upload): verdicts.py
        self.verdicts: tuple[int | None, dict[str, str]] = (None, {})

    @property
    def hotkey(self) -> str:
        return self.key.ss58_address

    def request_stop(self) -> None:
        """SIGINT/SIGTERM: stop after the current training step; the window is abandoned."""
        if not self._stop.is_set():
            logger.info("stopping: abandoning the current window after this step")
        self._stop.set()
        self.trainer.stop.set()

    # --- the loop ------------------------------------------------------------------
    async def run(self) -> None:
        background = [
            asyncio.create_task(self.clock.run(), name="clock"),
            asyncio.create_task(self.sync.run(), name="sync"),
        ]
        finishing: asyncio.Task | None = None
        done = 0
        last = self.position.last_window
        self._t0 = time.monotonic()
        await self.clock.refresh()
        self._resume_reveals()
        await self.report_ready()
        try:
            while not self._stop.is_set():
                w = self.windows.window_of(int(self.clock.block_now()))
                if w <= last:
                    await self._sleep_until(self.windows.start(last + 1))
                    continue
                result = await self._train(w)
                last = w
                if self._stop.is_set():
                    break
                if finishing is not None:
                    await finishing
                finishing = asyncio.create_task(self.finish_window(result), name=f"finish-{w}")
                done += 1
                if self.settings.max_windows and done >= self.settings.max_windows:
                    break
            if finishing is not None:
                async with asyncio.timeout(FINISH_TIMEOUT_S):
                    await finishing
            if self._reveals:  # the last upload counts only once its key is out
                await asyncio.wait(self._reveals, timeout=FINISH_TIMEOUT_S)
        finally:
            for t in (*self._reveals, *self._news):
                t.cancel()
            for t in background:
                t.cancel()
            # bounded: a background task that ignored its cancel must not hang shutdown
            stopped, stuck = await asyncio.wait(background, timeout=FINISH_TIMEOUT_S)
            for t in stopped:
                if not t.cancelled() and t.exception() is not None:
                    logger.warning("%s ended with: %s", t.get_name(), t.exception())
            for t in stuck:
                logger.warning("shutdown: background task %s did not stop", t.get_name())
            await self.sync.close()

    async def report_ready(self) -> None:
        """Write the status as soon as the miner runs, not after its first window: a restarted
        miner says at once whether the model it resumed is the network's (its fingerprint of
        the last applied window against the leader's, when published; a mismatch re-syncs)."""
        a = self.trainer.applied_through
        try:
            async with asyncio.timeout(10.0):
                ok = await self.sync.applier.check_fingerprint(a, None)
            if ok is False:
                self.sync.needs_resync = True
        except Exception as e:  # noqa: BLE001 - checked again after the next window
            logger.debug("start-up fingerprint check: %s", e)
        try:
            status = self.status()
            write_status(self.settings.state_dir, status)
            self.metrics.set_status(status)
        except Exception as e:  # noqa: BLE001
            logger.warning("could not write the status file (%s)", e)

    async def _sleep_until(self, block: int) -> None:
        tasks = [
            asyncio.create_task(self._stop.wait()),
            asyncio.create_task(self.clock.until(block)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _await_previous_aggregate(self, w: int) -> None:
        """Hold window ``w``'s H steps until the aggregate of ``w - 1`` is applied, or at most
        until the leader's publish deadline for it (mid-window): a delta trained on the model
        the validators measure it on, not one window behind, when the network is on time."""
        latest = self.windows.publish_deadline(w - 1)
        while (
            self.trainer.applied_through < w - 1
            and self.clock.block_now() < latest
            and not self._stop.is_set()
        ):
            await asyncio.sleep(max(0.05, min(self.clock.seconds_until(latest), 0.25)))

    async def _train(self, w: int) -> WindowResult:
        end = self.windows.end(w)
        await self._await_previous_aggregate(w)

        def should_end() -> bool:
            return self.clock.block_now() >= end

        base = self.trainer.applied_through
        try:
            res = await in_worker(self.trainer.train_window, w, should_end)
        except Exception as e:  # noqa: BLE001 - a bad window must not stop the miner
            logger.error("window %d: training failed (%s: %s); skipping it", w, type(e).__name__, e)
            await self._sleep_until(end)
            return WindowResult(w, {}, void=f"training failed ({type(e).__name__})")
        self._train_run += res.train_seconds
        res.base = base
        return res

    # --- after a window: upload, save, report --------------------------------------
    async def finish_window(self, r: WindowResult) -> None:
        """Compress (error feedback), sign and upload window ``r.window``'s delta, then save."""
        w, stats = r.window, Stats(window=r.window, loss=r.loss, steps=r.steps, pages=len(r.pages))
        stats.tokens_per_s = r.tokens / r.train_seconds if r.train_seconds > 0 else 0.0
        try:
            if r.void:
                logger.warning("window %d: nothing to upload: %s", w, r.void)
            elif r.steps:
                await self._upload(r, stats)
            else:
                logger.warning("window %d: no training step finished; nothing to upload", w)
        except Exception as e:  # noqa: BLE001
            logger.warning("window %d: upload failed (%s: %s)", w, type(e).__name__, e)
        sent = getattr(self, "_sent", None)
        if not stats.uploaded and sent is not None and sent[0] == w:
            try:
                await self._settle_failed_upload(w, stats, sent[1])
            except Exception as e:  # noqa: BLE001 - cannot tell: never send a delta twice
                logger.warning(
                    "window %d: could not settle the failed upload (%s: %s); its delta counts "
                    "as sent",
                    w,
                    type(e).__name__,
                    e,
                )
        if stats.uploaded:
            self.position.uploads_done += 1
            self._start_reveal(w)
        else:
            self.position.uploads_missed += 1
            try:
                seal_keys.forget(self.settings.state_dir, w)  # nothing stored that it could open
            except OSError as e:  # harmless: a later start-up reveals it or drops it
                logger.warning("window %d: could not delete its seal key (%s)", w, e)
        if r.trained_behind:
            self.position.windows_behind += 1
            logger.info(
                "window %d: trained from the model through window %d: the aggregate of window "
                "%d had not arrived by its publish deadline (a slow or absent leader)",
                w,
                r.base,
                w - 1,
            )
        self.position.last_window = w
        self.stats = stats
        try:
            await self.save()
        except Exception as e:  # noqa: BLE001 - the next window saves again
            logger.warning("window %d: could not save local state (%s)", w, e)
        else:  # the saved error feedback is past these uploads: their records are done
            try:
                sent_records.forget_through(self.settings.state_dir, w)
            except OSError as e:  # harmless: the next save or start-up deletes them
                logger.warning("window %d: could not delete its sent record (%s)", w, e)
        try:
            self.report()
        except Exception as e:  # noqa: BLE001 - e.g. a full disk; the loop carries on
            logger.warning("window %d: could not write the status file (%s)", w, e)
        self._start_task(self._read_verdicts(w - 1), f"verdicts-{w - 1}")

    def _start_task(self, job, name: str) -> None:
        """A background job nothing waits for (verdicts), cancelled at shutdown."""
        task = asyncio.create_task(job, name=name)
        self._news.add(task)
        task.add_done_callback(self._news.discard)

    async def _read_verdicts(self, window: int) -> None:
        """The validators' verdicts on this miner's upload of ``window``: they come after their
        peer lists, so read at once (the list the miner trained from is out), then for the
        validators still silent once the list is due and at the end of the next window.
        Logged, and kept for the status file (the last window any validator answered for)."""
        if window < 0:
            return
        got: dict = {}
        due, end = self.windows.publish_deadline(window) + 1, self.windows.end(window + 1)
        for block in (0, due, end):
            try:
                await self.clock.until(block)
                more = await read_own_verdicts(
                    self.sync.directory, self.settings.hp, window, self.settings.uid, skip=got
                )
            except Exception as e:  # noqa: BLE001 - news only: the loop carries on
                logger.debug("window %d: could not read the validators' verdicts (%s)", window, e)
                continue
            log_verdicts(window, more)
            got |= more
            if set(got) >= set(self.sync.directory.validators()):
                break
        if got:
            self.verdicts = (window, {hk: str(v) for hk, v in got.items()})
            try:
                self.write_status()
            except Exception as e:  # noqa: BLE001 - the next window writes it again
                logger.debug("window %d: could not write the status file (%s)", window, e)

    async def _settle_failed_upload(self, w: int, stats: Stats, comp) -> None:
        """A failed or late upload's delta goes back into error feedback, unless its PUT was
        sent and the object landed in the upload span after all (landing.py)."""
        if getattr(self, "_put_sent", None) == w:
            left = max(1.0, self.clock.seconds_until(self.windows.end(w + 1)))
            fate = await upload_fate(
                self.bucket,
                keys.upload_key(self.hotkey, w),
                open_ts=await self.clock.timestamp(self.windows.start(w)),
                cutoff_ts=await self.clock.timestamp(self.windows.upload_cutoff(w)),
                give_up=time.monotonic() + left,
                poll_s=max(0.2, min(2.0, self.clock.block_time)),
            )
            if fate is Fate.LANDED:
                logger.info("window %d: the upload was stored in time after all: sent", w)
                stats.uploaded = True
            if fate is not Fate.ABSENT:  # stored, or cannot tell: never send a delta twice
                return
        try:  # first: a stop after it restarts without the values, never with them cleared
            sent_records.forget(self.settings.state_dir, w)
        except OSError as e:  # the next save deletes it; a stop before that clears the values
            logger.warning("window %d: could not delete its sent record (%s)", w, e)
        self.compressor.unsend(comp)  # the delta reached nobody: it stays in error feedback

    def _start_reveal(self, w: int, key: bytes | None = None) -> None:
        if key is None:
            if self._seal is None or self._seal[0] != w:
                return
            key = self._seal[1]

        async def reveal_then_forget() -> None:
            await self.reveal(w, key)
            seal_keys.forget(self.settings.state_dir, w)

        task = asyncio.create_task(reveal_then_forget(), name=f"reveal-{w}")
        self._reveals.add(task)
        task.add_done_callback(self._reveals.discard)

    def _resume_reveals(self) -> None:
        """Reveal the keys a previous run of this miner stored but did not publish."""
        block = self.clock.block_now()
        for w, key in seal_keys.kept(self.settings.state_dir).items():
            if block < self.windows.reveal_deadline(w):
                logger.info("window %d: revealing the seal key kept from before the restart", w)
                self._start_reveal(w, key)
            else:
                seal_keys.forget(self.settings.state_dir, w)

    async def reveal(self, w: int, key: bytes) -> bool:
        """Publish the key of window ``w``'s sealed upload once its cut-off block has passed
        (never earlier: until then nobody must read the upload), before the reveal deadline."""
        await self.clock.until(self.windows.reveal_start(w))
        due = self.windows.reveal_deadline(w)
        left = self.clock.seconds_until(due)
        if left <= 0:
            logger.warning("window %d: reveal deadline passed before the seal key went out", w)
            return False
        try:
            await self.bucket.put_bytes(
                keys.reveal_key(self.hotkey, w), key, deadline=time.monotonic() + left
            )
        except StorageError as e:
            logger.warning(
                "window %d: seal key not published (%s): the upload counts for nothing", w, e
            )
            return False
        logger.debug("window %d: seal key published", w)
        return True

    async def _upload(self, r: WindowResult, stats: Stats) -> None:
        w, hp = r.window, self.settings.hp
        comp = await in_worker(self.compressor.compress, r.delta)
        self._sent = (w, comp)  # out of error feedback now; put back if it reaches nobody
        # which entries left error feedback, on disk before the PUT (written while the upload
        # is encoded): a stop before the save below restarts with them cleared, not sent twice
        record = asyncio.create_task(self._keep_sent(w, comp))
        try:
            blob = await asyncio.to_thread(
                lambda: encode_upload(
                    comp,
                    window=w,
                    uid=self.settings.uid,
                    hparams_hash=self.run_hash,
                    config=hp.compression,
                    key=self.key,
                    pages=r.pages,
                    steps=r.steps,
                )
            )
            sealed = await asyncio.to_thread(seal_upload, blob, window=w, hotkey=self.hotkey)
            self._seal = (w, sealed.key)
            await asyncio.to_thread(seal_keys.keep, self.settings.state_dir, w, sealed.key)
        finally:
            await record  # also before a failure puts the values back (and deletes it)
        stats.upload_bytes = len(sealed.data)
        left = self.clock.seconds_until(self.windows.upload_cutoff(w))
        if left <= 0:
            logger.warning("window %d: upload deadline passed before the upload was ready", w)
            return
        t0 = time.monotonic()
        self._put_sent = w  # from here on the object may be stored even if the PUT fails
        try:
            await self.bucket.put_bytes(
                keys.upload_key(self.hotkey, w), sealed.data, deadline=time.monotonic() + left
            )
        except StorageError as e:
            logger.warning("window %d: upload did not land in time (%s)", w, e)
            return
        stats.upload_seconds = time.monotonic() - t0
        stats.uploaded = self.clock.block_now() <= self.windows.upload_cutoff(w)
        if not stats.uploaded:
            logger.warning("window %d: upload landed after the cut-off block", w)

    async def _keep_sent(self, w: int, comp) -> None:
        try:
            await asyncio.to_thread(sent_records.keep, self.settings.state_dir, w, comp)
        except Exception as e:  # noqa: BLE001 - the upload still goes out
            logger.warning(
                "window %d: could not record the upload's sent entries (%s); a stop before the "
                "save would send them again",
                w,
                e,
            )

    def snapshot_job(self):
        """Runs in the training thread: a consistent copy of the model and optimizer."""
        trainer = self.trainer
        names = {id(p): n for n, p in trainer.model.named_parameters()}

        def job() -> tuple[int, dict, dict]:
            model = {
                n: p.detach().to("cpu", copy=True)
                for n, p in trainer.global_model.named_parameters()
            }
            return trainer.applied_through, model, optimizer_tensors(trainer.optimizer, names)

        return job

    async def save(self) -> None:
        fut = await in_worker(self.trainer.submit, self.snapshot_job())
        applied, model, opt = await asyncio.wrap_future(fut)
        self.position.applied_through = applied
        self.position.train_seconds_total = self.train_seconds_total
        self.position.wall_seconds_total = self.wall_seconds_total
        snap = Snapshot(self.position, model, opt, self.compressor.state_dict())
        await asyncio.to_thread(save_state, self.settings.state_dir, snap)

    @property
    def train_seconds_total(self) -> float:
        return self._train_base + self._train_run

    @property
    def wall_seconds_total(self) -> float:
        run = 0.0 if self._t0 is None else time.monotonic() - self._t0
        return self._wall_base + run

    def status(self) -> MinerStatus:
        stats, applier, pos = self.stats, self.sync.applier, self.position
        wall = self.wall_seconds_total
        return MinerStatus(
            role="miner",
            hotkey=self.hotkey,
            uid=self.settings.uid,
            window=pos.last_window,
            block=int(self.clock.block),
            in_sync=applier.in_sync,
            fingerprint_ok=applier.fingerprint_ok,
            applied_through=self.trainer.applied_through,
            peers_applied=applier.peers_applied,
            train_seconds_total=round(self.train_seconds_total, 3),
            wall_seconds_total=round(wall, 3),
            utilization=round(self.train_seconds_total / wall, 4) if wall > 0 else 0.0,
            loss=None if math.isnan(stats.loss) else round(stats.loss, 4),
            tokens_per_s=round(stats.tokens_per_s, 1),
            upload_bytes=stats.upload_bytes,
            upload_seconds=round(stats.upload_seconds, 3),
            uploads_done=pos.uploads_done,
            uploads_missed=pos.uploads_missed,
            windows_behind=pos.windows_behind,
            steps=stats.steps,
            pages=stats.pages,
            verdicts_window=self.verdicts[0],
            verdicts=dict(self.verdicts[1]),
        )

    def write_status(self) -> MinerStatus:
        """The status file and the metrics, from the state now."""
        status = self.status()
        write_status(self.settings.state_dir, status)
        self.metrics.set_status(status)
        return status

    def report(self) -> None:
        """The per-window summary line, the status file and the metrics."""
        status = self.write_status()
        sync = "in sync" if status.in_sync else "OUT OF SYNC"
        if status.fingerprint_ok is None:
            sync += " (fingerprint unchecked)"
        logger.info(
            "window %d | loss %s | %.0f tok/s | upload %s B in %.2fs%s | %d peers applied "
            "(through %d) | %s | util %.1f%%",
            status.window,
            "-" if status.loss is None else f"{status.loss:.4f}",
            status.tokens_per_s,
            status.upload_bytes,
            status.upload_seconds,
            "" if self.stats.uploaded else " MISSED",
            status.peers_applied,
            status.applied_through,
            sync,
            100 * status.utilization,
        )
