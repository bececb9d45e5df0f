"""The validator under ``torchrun --nproc_per_node N neurons/validator.py ...``: FSDP2 across N ranks.

Rank 0 runs the single-process validator (every start-up check, chain, wallet, storage, the
dataset, the window loop) with its full model on the CPU: the window-apply path, fingerprints,
checkpoints and the state file use that copy as they do today. The forward passes of the
measurements run on a copy sharded over all N ranks (``ShardedMeasurer``), which rank 0 refreshes
from the CPU model after every change; a GPU holds 1/N of the weights plus one gathered layer.
Only rank 0 talks to the chain and the buckets; the other ranks only execute its commands.
"""

from __future__ import annotations

import argparse
import logging
import signal
from functools import partial

import torch

from template.node.hparams import load_run_hparams
from template.training.model import build_model
from template.training.pages import PageDataset
from template.validator.startup import run_validator

from .config import ParallelConfig
from .dist import DistContext, broadcast_object, run_ranks
from .evaluate import ShardedMeasurer
from .shard import shard_model

logger = logging.getLogger(__name__)


def sharded_replica(hp, ctx: DistContext) -> torch.nn.Module:
    """The preset's model, sharded over the node (its weights come from rank 0 before use)."""
    return shard_model(build_model(hp.model).to(ctx.device), ctx, ParallelConfig())


async def run_sharded_validator(args: argparse.Namespace) -> None:
    """Every rank: join the node's process group and play its part."""
    await run_ranks(args.device, partial(_lead, args), partial(follow_rank0, args))


class ShardedMeasurerFactory:
    """``prepare_validator``'s ``make_measurer`` on rank 0: releases the other ranks (the
    start-up checks passed) and builds the sharded measurer around the CPU model."""

    def __init__(self, ctx: DistContext, hp):
        self.ctx, self.hp = ctx, hp
        self.measurer: ShardedMeasurer | None = None

    def __call__(
        self,
        model: torch.nn.Module,
        dataset: PageDataset,
        *,
        own,
        control,
        salt,
        device,
        control_pool=1,
    ) -> ShardedMeasurer:
        broadcast_object({"own": own, "control": control}, self.ctx)
        self.measurer = ShardedMeasurer(
            sharded_replica(self.hp, self.ctx),
            dataset,
            self.ctx,
            own=own,
            control=control,
            salt=salt,
            source=model,
            control_pool=control_pool,
        )
        return self.measurer

    def release(self) -> None:
        """The other ranks stop: after the run, or at once when start-up failed."""
        if self.measurer is None:
            broadcast_object(None, self.ctx)
        else:
            self.measurer.shutdown()


async def _lead(args: argparse.Namespace, ctx: DistContext) -> None:
    cpu = argparse.Namespace(**{**vars(args), "device": "cpu"})  # the full model: CPU RAM
    factory = ShardedMeasurerFactory(ctx, load_run_hparams(args.hparams))
    try:
        await run_validator(cpu, make_measurer=factory)
    finally:
        factory.release()
    logger.info("sharded validator stopped")


def follow_rank0(args: argparse.Namespace, ctx: DistContext) -> ShardedMeasurer | None:
    """Ranks > 0: wait for rank 0's start-up, then execute its measurer's commands until it
    stops (returns the measurer, None when rank 0's start-up failed)."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # torchrun signals every rank; rank 0 decides
        signal.signal(sig, signal.SIG_IGN)  # and releases this one with "stop"
    spec = broadcast_object(None, ctx)
    if spec is None:  # rank 0 failed its start-up and said so
        return None
    hp = load_run_hparams(args.hparams)
    measurer = ShardedMeasurer(
        sharded_replica(hp, ctx), None, ctx, own=spec["own"], control=spec["control"], salt=""
    )
    measurer.follow()
    return measurer
