"""The validator's losses on a sharded model: every rank runs the forward passes, rank 0 decides.

``sharded_loss`` splits the sequences over ranks (each rank runs the same number of forward
passes, as FSDP's all-gathers require) and all-reduces the summed loss. ``ShardedEvaluator``
is ``Evaluator`` with the upload applied to and removed from each rank's own shards; every
rank calls ``evaluate`` with the same upload (``share_upload`` sends rank 0's in wire form).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
import torch.distributed as dist

from template.training.compression import CompressedDelta, decode, encode
from template.training.inner import sequence_loss
from template.training.model import autocast
from template.training.wire import Upload
from template.validator.evaluate import EvalResult, Evaluator, sample_claimed

from .dist import DistContext, broadcast_object
from .shard import flat_range, local, reshard_all


@torch.no_grad()
def sharded_loss(
    model: torch.nn.Module, sequences: torch.Tensor, ctx: DistContext, *, batch_size: int = 32
) -> float:
    """Mean next-token loss over ``sequences`` (the same tensor on every rank)."""
    was_training = model.training
    model.eval()
    mine = torch.tensor_split(sequences, ctx.world)[ctx.rank]
    per_rank = -(-sequences.shape[0] // ctx.world)
    passes = -(-per_rank // batch_size)
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for piece in torch.tensor_split(mine, passes) if passes else ():
        n = piece.shape[0]
        if n == 0:  # keep the collective count equal: a pass that counts for nothing
            piece = sequences[:1]
        with autocast(ctx.device):
            loss = sequence_loss(model, piece.to(ctx.device))
        total[0] += float(loss) * n
        total[1] += n
    dist.all_reduce(total)
    model.train(was_training)
    return float(total[0] / total[1]) if total[1] > 0 else 0.0


@contextlib.contextmanager
def applied_to_shards(
    model: torch.nn.Module, delta: CompressedDelta, scale: float, ctx: DistContext
) -> Iterator[None]:
    """``theta[idx] -= scale * v`` on this rank's shards, exact values restored on exit."""
    params = dict(model.named_parameters())
    saved = []
    reshard_all(model)
    try:
        with torch.no_grad():
            for name, t in delta.tensors.items():
                flat = local(params[name]).view(-1)
                rng = flat_range(tuple(params[name].shape), ctx.rank, ctx.world)
                idx = t.indices.to(flat.device)
                keep = (idx >= rng.start) & (idx < rng.stop)
                idx = idx[keep] - rng.start
                saved.append((flat, idx, flat[idx].clone()))
                flat[idx] -= scale * t.values().to(flat.device, flat.dtype)[keep]
        yield
    finally:
        with torch.no_grad():
            reshard_all(model)
            for flat, idx, orig in saved:
                flat[idx] = orig


def share_upload(upload: Upload | None, ctx: DistContext, shapes, config) -> Upload:
    """Rank 0's decoded upload on every rank (its delta travels in the compact wire form)."""
    if ctx.is_main:
        wire = encode(upload.delta, config)
        meta = dataclasses.replace(upload, delta=CompressedDelta({}))
    else:
        wire = meta = None
    meta, wire = broadcast_object((meta, wire), ctx)
    return dataclasses.replace(meta, delta=decode(wire[0], shapes, config, wire[1]))


class ShardedEvaluator(Evaluator):
    """``Evaluator`` over an FSDP2 model; call it on every rank with the same arguments."""

    def __init__(self, *args, ctx: DistContext, **kwargs):
        super().__init__(*args, **kwargs)
        self.ctx = ctx

    def _loss(self, seqs: torch.Tensor) -> float:
        return sharded_loss(self.model, seqs, self.ctx, batch_size=64)

    @torch.no_grad()
    def evaluate(self, upload: Upload, window: int) -> EvalResult:
        held, held_before = self.heldout(window)
        pages = sample_claimed(upload.pages, self.assigned_pages, window, upload.uid, self.salt)
        own = self.dataset.sequences(pages)
        own_before = self._loss(own)
        with applied_to_shards(self.model, upload.delta, self.scale, self.ctx):
            own_after = self._loss(own)
            held_after = self._loss(held)
        return EvalResult(own_before, own_after, held_before, held_after, tuple(pages))
