"""The miner under ``torchrun --nproc_per_node N neurons/miner.py ...``: FSDP2 across N ranks.

Rank 0 runs every start-up step of the single-process miner (chain, wallet, storage, dataset,
the global model from local state or the leader) and the ordinary window loop; then it hands
the other ranks the run's facts (uid, dataset folder) and the global weights (tensor
broadcasts), every rank shards the model, and from then on rank 0 drives them through
``ShardedTrainer`` commands. Only rank 0 talks to the chain and the buckets; the upload it signs
is the single-process wire format.

Hooks into the miner: ``ShardedMiner`` (saves sharded state), ``ShardedGlobalModel`` (the
``GlobalModel`` of the window-apply path: outer steps, re-syncs and fingerprints on shards) and
``SentCompressor`` (the window's delta is compressed on shards by the trainer already).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist

from template.miner.loop import Miner, arm_shutdown_watchdog
from template.miner.startup import build_miner, close_all, settle_sent
from template.node.hparams import load_run_hparams
from template.protocol.aggregation import upload_work
from template.protocol.window_apply import OuterStep, check_order
from template.training.compression import CompressedDelta
from template.training.model import build_model
from template.training.offload import in_worker
from template.training.pages import PageDataset
from template.training.shards import TokenStream

from .checkpoint import ShardedStateError, read_manifest
from .config import ParallelConfig
from .dist import DistContext, broadcast_object, run_ranks
from .trainer import ShardedTrainer, ShardedWindowResult

logger = logging.getLogger(__name__)


def uploads_of(step: OuterStep) -> list:
    """The decoded uploads an outer step applies (the window-apply path passes
    ``functools.partial(apply_uploads, uploads=..., hp=...)``)."""
    uploads = getattr(step, "keywords", {}).get("uploads")
    if uploads is None:
        raise TypeError("a sharded model needs the outer step as partial(apply_uploads, ...)")
    return list(uploads)


class ShardedGlobalModel:
    """The window-apply path's ``GlobalModel`` over a ``ShardedTrainer`` (rank 0)."""

    def __init__(self, trainer: ShardedTrainer):
        self.trainer = trainer

    @property
    def applied_through(self) -> int:
        return self.trainer.applied_through

    async def _run(self, job):
        fut = await in_worker(self.trainer.submit, job)
        return await asyncio.wrap_future(fut)

    def copy(self) -> torch.nn.Module:
        """A full CPU copy (re-sync scratch space): gathered one tensor at a time."""
        fut = self.trainer.submit(lambda: self.trainer.gathered("global"))
        full = fut.result()
        model = build_model(self.trainer.hp.model, "cpu")
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(full[name].view(p.shape))
        return model

    async def apply(self, window: int, step: OuterStep) -> tuple[int, list[float]]:
        uploads, trainer = uploads_of(step), self.trainer

        def job() -> tuple[int, list[float]]:
            check_order(trainer.applied_through, window)
            n = trainer.apply_deltas(
                [u.delta for u in uploads], [upload_work(u, trainer.hp) for u in uploads]
            )
            trainer.applied_through = window
            return n, trainer.fingerprint()

        return await self._run(job)

    async def replace(self, window: int, source: torch.nn.Module) -> list[float]:
        trainer = self.trainer

        def job() -> list[float]:
            trainer.load_full(source)
            trainer.applied_through = window
            return trainer.fingerprint()

        return await self._run(job)


class SentCompressor:
    """The loop's compressor on rank 0: the sharded trainer compressed at the window's end."""

    def __init__(self, trainer: ShardedTrainer):
        self.trainer = trainer

    def compress(self, delta) -> CompressedDelta:
        return delta.compressed

    def unsend(self, sent: CompressedDelta) -> None:
        self.trainer.submit(lambda: self.trainer.unsend(sent))

    def state_dict(self) -> dict:
        return {}


class CompressedMapping(dict):
    """An empty delta mapping that carries the window's compressed delta to ``compress``."""

    def __init__(self, compressed: CompressedDelta | None):
        super().__init__()
        self.compressed = compressed


class LoopTrainer(ShardedTrainer):
    """What the miner loop sees: the window result's delta carries the compressed delta."""

    def train_window(self, window, should_end) -> ShardedWindowResult:
        res = super().train_window(window, should_end)
        res.delta = CompressedMapping(res.compressed)
        return res


class ShardedMiner(Miner):
    """``Miner`` whose local state is the sharded DCP state (every rank writes its part)."""

    async def save(self) -> None:
        self.position.applied_through = self.trainer.applied_through
        self.position.train_seconds_total = self.train_seconds_total
        self.position.wall_seconds_total = self.wall_seconds_total
        pos, folder = asdict(self.position), str(self.settings.state_dir)
        fut = await in_worker(self.trainer.submit, lambda: self.trainer.save(folder, pos))
        await asyncio.wrap_future(fut)


def send_weights(model: torch.nn.Module | None, names: list[str], ctx: DistContext) -> None:
    """Rank 0's parameters into every rank's ``model`` (same names), as tensor broadcasts."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in names:
            buf = params[name].detach().to(ctx.device, torch.float32).contiguous()
            dist.broadcast(buf, src=0)
            params[name].copy_(buf)


def _make_trainer(hp, model, dataset, uid, ctx, spec) -> LoopTrainer:
    send_weights(model, sorted(dict(model.named_parameters())), ctx)
    cfg = ParallelConfig(activation_checkpointing=spec["activation_checkpointing"])
    return LoopTrainer(
        hp,
        model.to(ctx.device),
        dataset,
        uid,
        ctx,
        parallel=cfg,
        micro_batch_size=spec["micro"],
        max_steps=spec["max_steps"],
    )


async def run_sharded_miner(args: argparse.Namespace) -> None:
    """Every rank: join the node's process group and play its part."""
    await run_ranks(args.device, partial(_lead, args), partial(_follow, args))


async def _restore(trainer: ShardedTrainer, miner: Miner) -> None:
    """The sharded state of this run and hotkey: everything when it is at the window the
    global model is at now, otherwise (the model came from the leader since) the AdamW
    moments and the error feedback only, as the single-process miner does."""
    doc = read_manifest(miner.settings.state_dir)
    if doc is None:
        return
    saved, pos = doc.get("position", {}), miner.position
    if (saved.get("hparams_hash"), saved.get("hotkey")) != (pos.hparams_hash, pos.hotkey):
        logger.info("sharded state is from another run or hotkey; not used")
        return
    parts = ("optim", "ef")
    if saved.get("applied_through") == trainer.applied_through:
        parts = ("model", "optim", "global", "ef")
    try:
        trainer.load(str(miner.settings.state_dir), parts)
    except (ShardedStateError, RuntimeError, ValueError, KeyError) as e:
        logger.warning("sharded state unusable (%s); optimizer and error feedback start fresh", e)
        return
    numels = {n: math.prod(shape) for n, shape in trainer.shapes.items()}
    saved_window = saved.get("last_window", -1)
    if isinstance(saved_window, int):  # uploads sent after this save: not sent twice
        await settle_sent(
            miner.settings.state_dir,
            saved_window,
            numels,
            trainer.clear_entries,
            miner.bucket,
            miner.hotkey,
        )
        # a window already handled is not trained and uploaded again (a restart inside it)
        pos.last_window = max(pos.last_window, saved_window)
    counters = ("uploads_done", "uploads_missed", "windows_behind")
    for key in (*counters, "train_seconds_total", "wall_seconds_total"):
        if key in saved and getattr(pos, key) == 0:
            setattr(pos, key, saved[key])
    logger.info(
        "resumed sharded state (%s) saved at window %s", "+".join(parts), saved.get("last_window")
    )


def _follow(args: argparse.Namespace, ctx: DistContext) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # torchrun signals every rank; rank 0 decides
        signal.signal(sig, signal.SIG_IGN)  # and releases this one with "stop"
    spec = broadcast_object(None, ctx)
    if spec is None:  # rank 0 failed its start-up and said so
        return
    hp = load_run_hparams(args.hparams)
    dataset = PageDataset(TokenStream(Path(spec["dataset"])), hp)
    trainer = _make_trainer(hp, build_model(hp.model), dataset, spec["uid"], ctx, spec)
    trainer.follow()


async def _lead(args: argparse.Namespace, ctx: DistContext) -> None:
    try:
        miner, closers = await build_miner(args)
    except BaseException:
        broadcast_object(None, ctx)
        raise
    single, hp = miner.trainer, miner.settings.hp
    spec = {
        "uid": miner.settings.uid,
        "dataset": str(single.dataset.stream.folder),
        "micro": single.micro_batch_size,
        "max_steps": single.max_steps,
        "activation_checkpointing": bool(getattr(args, "activation_checkpointing", False)),
    }
    broadcast_object(spec, ctx)
    model, dataset, applied = single.global_model.to("cpu"), single.dataset, single.applied_through
    single.model = single.optimizer = single.global_model = None  # the single-process
    miner.trainer = miner.sync.trainer = miner.sync.applier.model = single = None  # copies go
    if torch.cuda.is_available():  # before the sharded model is built
        torch.cuda.empty_cache()
    trainer = _make_trainer(hp, model, dataset, spec["uid"], ctx, spec)
    trainer.applied_through = applied
    await _restore(trainer, miner)
    sharded = ShardedMiner(
        miner.settings,
        chain=miner.chain,
        key=miner.key,
        bucket=miner.bucket,
        trainer=trainer,
        clock=miner.clock,
        sync=miner.sync,
        position=miner.position,
        compressor=SentCompressor(trainer),
        metrics=miner.metrics,
    )
    miner.sync.trainer = trainer
    miner.sync.applier.model = ShardedGlobalModel(trainer)
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        arm_shutdown_watchdog()
        sharded.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    try:
        await sharded.run()
    finally:
        try:
            trainer.shutdown()
        finally:
            await close_all(closers)
    logger.info("sharded miner stopped")
