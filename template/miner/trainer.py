"""The training worker: the only code that changes the model weights, run in its own thread.

It holds two models: ``global_model`` (the network's model: every applied aggregate, nothing
else; it is what fingerprints and state files describe) and ``model`` (the live weights being
trained). The first window starts with ``model <- global_model``; later ones carry on from the
live weights, and when the previous window's aggregate arrives mid-window it is applied to both
and replaces the miner's own previous-window progress in the live weights
(``template/training/overlap.py``); a window's delta is its own training only. A window that
fails part-way leaves nothing in the live weights, and one whose live weights were reset after
some of its steps (a re-sync) is void: its delta would lack work its upload claims.

Other threads never touch the weights: they ``submit`` jobs, which the training thread runs
between two optimizer steps (or the submitting thread runs at once when no window is
training). torch releases the GIL inside its kernels, so the asyncio loop keeps working.
"""

from __future__ import annotations

import copy
import logging
import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from template.hparams import HParams
from template.protocol.window_apply import copy_params
from template.training.inner import make_optimizer, train_steps
from template.training.overlap import LiveOverlap
from template.training.pages import PageDataset
from template.training.wire import MAX_PAGES

logger = logging.getLogger(__name__)


@dataclass
class WindowResult:
    """What one window of training produced."""

    window: int
    delta: dict[str, torch.Tensor]  # global - live, fp32, by parameter name
    pages: list[int] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    loss: float = math.nan
    train_seconds: float = 0.0
    base: int = -1  # the last window whose aggregate was in the model it trained from
    void: str = ""  # why nothing of this window may be sent ("": its delta is its work)

    @property
    def trained_behind(self) -> bool:
        """Trained without the previous window's aggregate (it came after its deadline)."""
        return self.steps > 0 and self.base < self.window - 1


class PageStream:
    """The window's sequences in protocol order: pages(w, uid, n) is prefix-stable, so step i
    reads sequences [i * batch_size, (i + 1) * batch_size) of the page stream."""

    def __init__(self, dataset: PageDataset, window: int, uid: int, batch_size: int):
        self.dataset, self.window, self.uid, self.batch_size = dataset, window, uid, batch_size
        self.limit = min(dataset.layout.num_train, MAX_PAGES)
        self.pages: list[int] = []
        self._planned: list[int] = []
        self._buf = torch.empty(0, dataset.seq_len + 1, dtype=torch.long)
        self._base = 0  # stream index of self._buf[0]

    def batch(self, step: int) -> torch.Tensor | None:
        """The batch of ``step`` (None when the window's page budget is spent). Steps are
        read in order; sequences before the current step are dropped."""
        lo, hi = step * self.batch_size, (step + 1) * self.batch_size
        new: list[torch.Tensor] = []
        have = self._base + self._buf.shape[0]
        while have < hi:
            n = len(self.pages) + 1
            if n > self.limit:
                return None
            if n > len(self._planned):  # prefix-stable: extend the plan by doubling
                count = min(self.limit, max(8, 2 * len(self._planned)))
                self._planned = self.dataset.layout.pages(self.window, self.uid, count)
            page = self._planned[n - 1]
            self.pages.append(page)
            new.append(self.dataset.page(page))
            have += new[-1].shape[0]
        if new:
            keep = self._buf[max(0, lo - self._base) :]
            self._base = max(self._base, lo)
            self._buf = torch.cat([keep, *new])
        return self._buf[lo - self._base : hi - self._base]


def window_steps(hp: HParams, max_steps: int) -> int:
    """Inner steps per window: ``max_steps``, 0 meaning H (``train.inner_steps``).

    The protocol's work unit is H steps on the window's pages_per_window pages: more steps
    would spread the same delta over more pages (the validator's own-page proof fades with
    them) and run a different algorithm from the one the preset was tuned for."""
    h = hp.train.inner_steps
    if not 0 <= max_steps <= h:
        raise ValueError(f"max_steps must be 0..{h} (train.inner_steps); got {max_steps}")
    return max_steps or h


class Trainer:
    """Owns the models and the optimizer; runs windows and jobs in one thread at a time."""

    # an outer step failed part-way through the global model: it may hold part of it, so the
    # miner re-syncs (class-level: the sharded trainer, which never sets it, inherits False)
    global_suspect: bool = False

    def __init__(
        self,
        hp: HParams,
        global_model: torch.nn.Module,
        dataset: PageDataset,
        uid: int,
        *,
        device: str = "cpu",
        micro_batch_size: int | None = None,
        max_steps: int = 0,
    ):
        self.hp, self.dataset, self.uid, self.device = hp, dataset, uid, device
        self.global_model = global_model
        self.model = copy.deepcopy(global_model)
        self.optimizer = make_optimizer(self.model, hp.train)
        self.overlap = LiveOverlap(carry=True)  # live = global - own unreplaced progress
        self.micro_batch_size = micro_batch_size
        self.max_steps = window_steps(hp, max_steps)
        self.stop = threading.Event()  # SIGINT/SIGTERM: abandon the window after this step
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._training = False
        self.applied_through = -1  # last window whose aggregate is in global_model
        self._resets = 0  # times the live weights were reset to the global model

    # --- jobs -----------------------------------------------------------------------
    def submit(self, fn: Callable[[], object]) -> Future:
        """Run ``fn`` in the training thread between steps (or here, now, when idle).

        Call it from a worker thread (``asyncio.to_thread``) since it may run ``fn`` inline.
        """
        fut: Future = Future()
        self._jobs.put((fn, fut))
        with self._lock:
            if not self._training:
                self._drain()
        return fut

    def _drain(self) -> None:
        while True:
            try:
                fn, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the waiting coroutine
                fut.set_exception(e)

    # --- training -------------------------------------------------------------------
    def train_window(self, window: int, should_end: Callable[[], bool]) -> WindowResult:
        """Train ``max_steps`` (H by default) steps on ``window``'s pages from the global model,
        fewer if ``should_end()`` (polled between steps) comes first; return the delta.

        A window that raises part-way leaves nothing behind: its steps (and any carried
        progress) are dropped from the live weights before the error propagates."""
        with self._lock:
            self._training = True
        try:
            return self._run_window(window, should_end)
        except BaseException:
            # else the next window's delta (global - live - ahead) would hold the failed steps
            self.reset_live()
            raise
        finally:
            with self._lock:
                self._drain()
                self._training = False

    def _run_window(self, window: int, should_end: Callable[[], bool]) -> WindowResult:
        """The steps of ``train_window`` (run while it holds ``_training``)."""
        self._drain()
        self.overlap.begin(dict(self.global_model.named_parameters()), self.model)
        stream = PageStream(self.dataset, window, self.uid, self.hp.train.batch_size)
        res = WindowResult(window, {})
        losses: list[float] = []
        start_step = window * self.hp.train.inner_steps
        step, resets, kept_from = 0, self._resets, 0  # kept_from: first step the live weights hold
        while not (self.stop.is_set() or should_end()):
            if step >= self.max_steps:
                break
            self._drain()
            if self._resets != resets:  # a job (a re-sync, a failed outer step) reset them
                resets, kept_from = self._resets, step
            batch = stream.batch(step)
            if batch is None:
                break
            stats = train_steps(
                self.model,
                self.optimizer,
                [batch],
                self.hp.train,
                start_step=start_step + step,
                device=self.device,
                micro_batch_size=self.micro_batch_size,
            )
            res.train_seconds += stats.seconds
            res.tokens += stats.tokens
            losses.append(stats.loss_mean)
            step += 1
        res.steps = step
        res.pages = list(stream.pages[: self._pages_used(step)])
        res.loss = sum(losses) / len(losses) if losses else math.nan
        if kept_from:
            # the delta would hold steps kept_from.. only, on pages that are not a prefix of the
            # window's assignment, while the upload claims them all: send nothing. The steps
            # left in the live weights go at the next window's start (nothing is carried).
            res.void = (
                f"the live weights were reset (a re-sync or a failed outer step) after "
                f"{kept_from} of its {step} steps: its delta lacks the work an upload claims"
            )
        elif res.steps:  # this window's training only (aggregates and carried progress excluded)
            # still "training": an outer step submitted now waits for the drain in train_window
            # instead of running in its own thread while the delta is read
            res.delta = self.overlap.end(dict(self.global_model.named_parameters()), self.model)
        return res

    def _pages_used(self, steps: int) -> int:
        spp = self.dataset.seqs_per_page
        return -(-steps * self.hp.train.batch_size // spp)

    # --- things jobs do -------------------------------------------------------------
    def apply_outer(
        self, apply: Callable[[torch.nn.Module], int], window: int | None = None
    ) -> int:
        """Apply an outer step to the global model and, identically, to the live weights.

        With ``window``, ``applied_through`` advances as soon as the global model holds the
        step, so that nothing can apply it twice: a failure on the live weights resets them to
        the global model instead of propagating (a retry would find the window applied). A
        failure on the global model may have left part of the step in it: it propagates and
        sets ``global_suspect`` (re-sync)."""
        try:
            n = apply(self.global_model)
        except BaseException:
            self.global_suspect = True
            raise
        if window is not None:
            self.applied_through = window
        try:
            apply(self.model)
            self.overlap.rebase(self.model)
        except Exception as e:  # noqa: BLE001 - the global model is right; rebuild the live one
            logger.warning(
                "outer step failed on the live weights (%s: %s); they restart from the global "
                "model (the window in training, if any, is not sent)",
                type(e).__name__,
                e,
            )
            self.reset_live()
        return n

    def reset_live(self) -> None:
        """Live weights <- global model (after a re-sync, or to drop a failed window)."""
        self._resets += 1  # before the copy: a window that spans this cannot send its delta
        copy_params(self.global_model, self.model)
        self.overlap.reset()
