"""One data-parallel inner step of a sharded model: the node's batch split across ranks.

Step ``i`` of a window uses the same ``batch_size`` sequences as on one process; rank r takes
rows ``[r * b, (r + 1) * b)`` with ``b = batch_size / world``. Each rank's loss is the mean over
its rows and FSDP's reduce-scatter averages the gradients over ranks, so the optimizer sees the
gradient of the mean loss over the whole batch. Micro-batching (gradient accumulation) works as
on one process inside each rank's share, with one reduce-scatter per step (the last
micro-batch's backward).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule

from template.hparams import TrainConfig
from template.training.inner import InnerStats, train_steps

from .dist import DistContext


def rank_rows(batch: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's equal share of the node's batch (the batch must split evenly)."""
    n = batch.shape[0]
    if n % ctx.world:
        raise ValueError(
            f"batch of {n} sequences does not split over {ctx.world} ranks; use a rank count "
            "that divides train.batch_size"
        )
    b = n // ctx.world
    return batch[ctx.rank * b : (ctx.rank + 1) * b]


@contextlib.contextmanager
def sync_on_last_micro_batch(model: torch.nn.Module, parts: int) -> Iterator[None]:
    """Gradient accumulation without a reduce-scatter per micro-batch: FSDP syncs gradients
    only in the backward of every ``parts``-th forward (the step's last micro-batch)."""
    if parts <= 1 or not isinstance(model, FSDPModule):
        yield
        return
    calls = itertools.count()

    def before_forward(module, _args) -> None:
        module.set_requires_gradient_sync(next(calls) % parts == parts - 1)

    handle = model.register_forward_pre_hook(before_forward)
    try:
        yield
    finally:
        handle.remove()
        model.set_requires_gradient_sync(True)


def sharded_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    cfg: TrainConfig,
    ctx: DistContext,
    *,
    step: int,
    micro_batch_size: int | None = None,
) -> InnerStats:
    """One optimizer step on this rank's rows; the loss reported is the node's mean."""
    rows = rank_rows(batch, ctx)
    parts = -(-rows.shape[0] // (micro_batch_size or rows.shape[0]))
    with sync_on_last_micro_batch(model, parts):
        stats = train_steps(
            model,
            optimizer,
            [rows],
            cfg,
            start_step=step,
            device=ctx.device,
            micro_batch_size=micro_batch_size,
        )
    loss = torch.tensor([stats.loss_mean], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(loss)
    mean = float(loss) / ctx.world
    tokens = stats.tokens * ctx.world
    return InnerStats(stats.steps, tokens, mean, mean, mean, stats.seconds)
