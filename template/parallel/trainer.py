"""The miner's trainer on a sharded model, run by every rank and driven by rank 0.

Rank 0 runs the ordinary miner (chain, storage, the window loop) with this trainer in place of
``template.miner.trainer.Trainer``; every collective it starts is announced first with a small
command broadcast (``begin``, ``step``, ``end``, ``apply``, ``reset``, ``save``, ``stop``), and
the other ranks run ``follow()``, which executes the same commands in the same order. Rank 0
alone decides when a window ends, which aggregates apply and where the state is saved.

Memory per rank: the live model's shard, its AdamW moments, the global copy's shard and the
error-feedback shard (1/world of each), plus one gathered layer at a time in forward/backward.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from template.hparams import HParams
from template.miner.trainer import PageStream, Trainer, WindowResult, window_steps
from template.training.compression import CompressedDelta, decode, encode
from template.training.inner import make_optimizer
from template.training.overlap import LiveOverlap
from template.training.pages import PageDataset

from .apply import apply_sparse_to_shards
from .compress import ShardedCompressor, all_gather_varlen
from .config import ParallelConfig
from .dist import DistContext, RankCommands, RankCommandsStopped
from .fingerprint import sharded_fingerprint
from .shard import (
    LocalShards,
    flat_range,
    load_full_into_shards,
    local,
    reshard_all,
    shard_model,
)
from .train import sharded_step

logger = logging.getLogger(__name__)


@dataclass
class ShardedWindowResult(WindowResult):
    """A window's result; the delta is already compressed (rank 0: the upload's content)."""

    compressed: CompressedDelta | None = None


class ShardedTrainer(RankCommands, Trainer):
    """``Trainer``'s interface over an FSDP2 model; see the module docstring (commands:
    ``dist.RankCommands``)."""

    def __init__(
        self,
        hp: HParams,
        global_model: torch.nn.Module,
        dataset: PageDataset,
        uid: int,
        ctx: DistContext,
        *,
        parallel: ParallelConfig | None = None,
        micro_batch_size: int | None = None,
        max_steps: int = 0,
    ):
        self.hp, self.dataset, self.uid, self.ctx = hp, dataset, uid, ctx
        self.device = str(ctx.device)
        self.shapes = {n: tuple(p.shape) for n, p in global_model.named_parameters()}
        self.model = shard_model(global_model.to(ctx.device), ctx, parallel or ParallelConfig())
        self.global_shards = {
            n: local(p).detach().clone().float() for n, p in self.model.named_parameters()
        }
        self.optimizer = make_optimizer(self.model, hp.train)
        self.compressor = ShardedCompressor(hp.compression, ctx)
        self.micro_batch_size, self.max_steps = micro_batch_size, window_steps(hp, max_steps)
        self.overlap = LiveOverlap(carry=True)  # as the single-process trainer: carry on
        self.stop = threading.Event()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._training = False
        self.applied_through = -1
        self._resets = 0  # times the live weights were reset (Trainer's void-window rule)
        self._stream: PageStream | None = None
        self._losses: list[float] = []
        self._clear_indices: dict[str, torch.Tensor] | None = None  # rank 0, clear_entries
        self.compress_seconds = 0.0  # the last window's error feedback + top-k + quantisation

    # --- the window -------------------------------------------------------------------
    def train_window(self, window: int, should_end: Callable[[], bool]) -> ShardedWindowResult:
        with self._lock:
            self._training = True
        res = ShardedWindowResult(window, {})
        try:
            self._drain()
            self._cmd("begin", window)
            step, resets, kept_from = 0, self._resets, 0  # as Trainer._run_window
            while not (self.stop.is_set() or should_end()):
                if step >= self.max_steps:
                    break
                self._drain()
                if self._resets != resets:  # a job (a re-sync) reset the live weights
                    resets, kept_from = self._resets, step
                if self._stream.batch(step) is None:
                    break
                stats = self._cmd("step", window, step)
                res.train_seconds += stats.seconds
                res.tokens += stats.tokens
                step += 1
            res.steps = step
            res.pages = list(self._stream.pages[: self._pages_used(step)])
            res.loss = sum(self._losses) / len(self._losses) if self._losses else math.nan
            if kept_from:  # its delta lacks the steps before the reset: send nothing
                res.void = f"the live weights were reset after {kept_from} of its {step} steps"
            elif step and not self.stop.is_set():  # an abandoned window leaves the buffers alone
                res.compressed = self._cmd("end")
        except RankCommandsStopped:
            raise  # shutting down: no rank takes commands any more
        except Exception:
            self._drop_failed_window()
            raise
        finally:
            with self._lock:
                self._drain()
                self._training = False
        return res

    def _drop_failed_window(self) -> None:
        """After an error mid-window: live weights <- global on every rank (else the next
        window's delta would hold the failed steps). A broken process group cannot: logged."""
        try:
            self.reset_live()
        except Exception as e:  # noqa: BLE001 - the original error is the one to report
            logger.error("could not drop a failed window's steps (%s: %s)", type(e).__name__, e)

    def _do_begin(self, window: int) -> None:
        reshard_all(self.model)
        self.overlap.begin(self.global_shards, LocalShards(self.model))
        self._stream = PageStream(self.dataset, window, self.uid, self.hp.train.batch_size)
        self._losses = []

    def _do_step(self, window: int, step: int):
        batch = self._stream.batch(step)
        stats = sharded_step(
            self.model,
            self.optimizer,
            batch,
            self.hp.train,
            self.ctx,
            step=window * self.hp.train.inner_steps + step,
            micro_batch_size=self.micro_batch_size,
        )
        self._losses.append(stats.loss_mean)
        return stats

    def _do_end(self) -> CompressedDelta | None:
        t0 = time.perf_counter()
        delta = self.overlap.end(self.global_shards, LocalShards(self.model))
        out = self.compressor.compress({n: d.reshape(-1) for n, d in delta.items()}, self.shapes)
        if self.ctx.device.type == "cuda":
            torch.cuda.synchronize(self.ctx.device)
        self.compress_seconds = time.perf_counter() - t0
        return out

    @torch.no_grad()
    def local_delta(self) -> dict[str, torch.Tensor]:
        """This rank's shard of ``global - live`` (fp32, flat), by parameter name (after a
        window's end: its delta, unless carried progress no outer step replaced was dropped)."""
        live = {n: local(p) for n, p in self.model.named_parameters()}
        return {n: (g - live[n].float()).reshape(-1) for n, g in self.global_shards.items()}

    @torch.no_grad()
    def _copy_global_to_live(self) -> None:
        """Live weights <- global copy; nothing is carried (a re-sync or a reset)."""
        reshard_all(self.model)
        for n, p in self.model.named_parameters():
            local(p).copy_(self.global_shards[n])
        self.overlap.reset()

    # --- jobs (run between steps, in order on every rank) -----------------------------
    def apply_deltas(
        self, deltas: Sequence[CompressedDelta], work: Sequence[float] | None = None
    ) -> int:
        """The outer step for these peers' decoded deltas (weighted by their ``work`` shares),
        on the global copy and the live weights. Rank 0 sends them in wire form (the compact
        encoding); every rank decodes."""
        cfg = self.hp.compression
        wire = [encode(d, cfg) for d in deltas] if self.ctx.is_main else None
        shares = None if work is None else [float(w) for w in work]
        return self._cmd("apply", wire, shares)

    def _do_apply(self, wire, work=None) -> int:
        cfg = self.hp.compression
        peers = [decode(t, self.shapes, cfg, m).sparse() for t, m in wire]
        reshard_all(self.model)
        live = {n: local(p) for n, p in self.model.named_parameters()}
        n = apply_sparse_to_shards(
            [self.global_shards, live],
            peers,
            self.shapes,
            rank=self.ctx.rank,
            world=self.ctx.world,
            lr=self.hp.outer.lr,
            clip_to_median=self.hp.outer.clip_to_median,
            work=work,
        )
        self.overlap.rebase(LocalShards(self.model))
        return n

    def apply_outer(
        self, apply: Callable[[torch.nn.Module], int], window: int | None = None
    ) -> int:
        raise NotImplementedError("a sharded trainer applies peers with apply_deltas()")

    def reset_live(self) -> None:
        self._resets += 1  # before the reset: a window that spans it cannot send its delta
        self._cmd("reset")

    def _do_reset(self) -> None:
        self._copy_global_to_live()

    def save(self, folder: str, position: dict) -> None:
        """Save the sharded state under ``folder`` (every rank writes its shards)."""
        self._cmd("save", folder, position)

    def _do_save(self, folder: str, position: dict) -> None:
        from .checkpoint import save_sharded

        save_sharded(folder, self, position)

    def unsend(self, sent: CompressedDelta | None) -> None:
        """A failed or late upload: put its values back into the error-feedback shards."""
        wire = encode(sent, self.hp.compression) if self.ctx.is_main else None
        self._cmd("unsend", wire)

    def _do_unsend(self, wire) -> None:
        sent = decode(wire[0], self.shapes, self.hp.compression, wire[1])
        for name, t in sent.tensors.items():
            e, keep, local = self._error_shard(name, t.indices)
            if e is not None:
                e[local] += t.values()[keep].to(e.device)

    def _error_shard(self, name: str, idx: torch.Tensor):
        """(this rank's error-feedback shard of ``name``, which flat ``idx`` fall in it, their
        positions in it); (None, None, None) for a tensor it does not hold."""
        e = self.compressor.error.get(name)
        if e is None or name not in self.shapes:
            return None, None, None
        rng = flat_range(self.shapes[name], self.ctx.rank, self.ctx.world)
        keep = (idx >= rng.start) & (idx < rng.stop)
        return e, keep, (idx[keep] - rng.start).to(e.device)

    def clear_entries(self, indices: dict) -> None:
        """Zero the error-feedback shards at flat indices (rank 0's sent record at start-up):
        the command names the tensors and counts, the indices follow as tensor broadcasts."""
        flat = {n: torch.as_tensor(i, dtype=torch.int64).reshape(-1) for n, i in indices.items()}
        self._clear_indices = flat
        try:
            self._cmd("clear_entries", [(n, t.numel()) for n, t in flat.items()])
        finally:
            self._clear_indices = None

    def _do_clear_entries(self, counts: list[tuple[str, int]]) -> None:
        for name, count in counts:
            if self.ctx.is_main:
                idx = self._clear_indices[name].to(self.ctx.device).contiguous()
            else:
                idx = torch.empty(count, dtype=torch.int64, device=self.ctx.device)
            if count:
                dist.broadcast(idx, src=0)
            e, _, local = self._error_shard(name, idx)
            if e is not None:
                e[local] = 0.0

    def fingerprint(self) -> list[float]:
        """``model_fingerprint`` of the global model, computed on shards (collective)."""
        return self._cmd("fingerprint")

    def _do_fingerprint(self) -> list[float]:
        return sharded_fingerprint(self.global_shards, self.shapes, self.ctx)

    def load_full(self, source: torch.nn.Module | None) -> None:
        """Global copy and live weights <- rank 0's full ``source`` (a re-sync), one tensor at
        a time; others pass None."""
        self._source = source
        self._cmd("load_full")

    def _do_load_full(self) -> None:
        load_full_into_shards(self.global_shards, self.shapes, self._source, self.ctx)
        self._source = None
        self._copy_global_to_live()

    def gathered(self, what: str) -> dict[str, torch.Tensor]:
        """Rank 0: the full flat fp32 ``delta`` (global - live) or ``global`` weights on CPU,
        gathered one tensor at a time (re-syncs, checks); other ranks get {}."""
        return self._cmd("gather", what)

    def _do_gather(self, what: str) -> dict[str, torch.Tensor]:
        shards = self.local_delta() if what == "delta" else self.global_shards
        out = {}
        for n, t in shards.items():
            full = all_gather_varlen(t.reshape(-1).float(), self.ctx)
            if self.ctx.is_main:
                out[n] = full.cpu()
        return out

    def load(
        self, folder: str, parts: tuple[str, ...] = ("model", "optim", "global", "ef")
    ) -> dict:
        """Load the sharded state saved by ``save``; returns the saved position."""
        return self._cmd("load", folder, parts)

    def _do_load(self, folder: str, parts: tuple[str, ...]) -> dict:
        from .checkpoint import load_sharded

        return load_sharded(folder, self, parts)
