"""FSDP2 on the shared model: ``fully_shard`` per decoder layer, then the root.

Every parameter becomes a DTensor sharded along dim 0 (``torch.chunk`` rows: rank r holds rows
``[r * c, (r + 1) * c)`` with ``c = ceil(rows / world)``), so each rank's local tensor is one
contiguous range of the flattened parameter. ``flat_range`` gives that range; compression and
the outer step use it to work on local shards with global flat indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, Shard

from .config import ParallelConfig
from .dist import DistContext


@dataclass(frozen=True)
class FlatRange:
    """This rank's slice ``[start, stop)`` of a flattened parameter of ``numel`` values."""

    start: int
    stop: int
    numel: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def flat_range(shape: tuple[int, ...], rank: int, world: int) -> FlatRange:
    """The flat slice rank ``rank`` holds under FSDP2's dim-0 sharding."""
    numel = math.prod(shape)
    if not shape:
        return FlatRange(0, numel if rank == 0 else 0, numel)
    rows = shape[0]
    row = numel // rows if rows else 0
    per = -(-rows // world)
    lo, hi = min(rank * per, rows), min((rank + 1) * per, rows)
    return FlatRange(lo * row, hi * row, numel)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a transformers causal LM (``model.model.layers``)."""
    return list(model.model.layers)


def shard_model(model: torch.nn.Module, ctx: DistContext, cfg: ParallelConfig) -> torch.nn.Module:
    """Shard ``model`` in place (layers, then the root) and return it."""
    kwargs: dict = {"mesh": ctx.mesh, "reshard_after_forward": cfg.reshard_after_forward}
    if cfg.mixed_precision and ctx.device.type == "cuda":
        kwargs["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32
        )
    if cfg.activation_checkpointing:
        enable_activation_checkpointing(model)
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    for name, p in model.named_parameters():
        check_layout(name, p, ctx)
    return model


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute every decoder layer's activations in backward (transformers' own switch)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def reshard_all(model: torch.nn.Module) -> None:
    """Free any gathered (unsharded) parameters, so in-place edits of the local shards are what
    the next forward all-gathers."""
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def local(p: torch.Tensor) -> torch.Tensor:
    """The local shard of a (DTensor) parameter; a plain tensor is its own shard."""
    return p.to_local() if isinstance(p, DTensor) else p


class LocalShards:
    """A sharded model seen as this rank's shards: ``named_parameters`` yields each local
    tensor, so element-wise code written for a module (``training.overlap``) runs on shards.
    Call ``reshard_all`` first: in-place edits are what the next forward all-gathers."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def named_parameters(self):
        return ((n, local(p)) for n, p in self.model.named_parameters())


def load_full_into_shards(
    shards: dict[str, torch.Tensor],
    shapes: dict[str, tuple[int, ...]],
    source: torch.nn.Module | None,
    ctx: DistContext,
) -> None:
    """Every rank's flat ``shards`` <- its slice of rank 0's full ``source`` (the other ranks
    pass None), one tensor broadcast at a time: no rank holds more than one full tensor."""
    src = dict(source.named_parameters()) if ctx.is_main else {}
    with torch.no_grad():
        for name in sorted(shapes):
            if ctx.is_main:
                full = src[name].detach().to(ctx.device, torch.float32).contiguous()
            else:
                full = torch.empty(shapes[name], device=ctx.device)
            dist.broadcast(full, src=0)
            rng = flat_range(shapes[name], ctx.rank, ctx.world)
            shards[name].view(-1).copy_(full.view(-1)[rng.start : rng.stop])


def check_layout(name: str, p: torch.Tensor, ctx: DistContext) -> None:
    """Refuse a layout other than the dim-0 row split ``flat_range`` assumes."""
    if not isinstance(p, DTensor):
        raise ValueError(f"{name}: not sharded")
    if tuple(p.placements) != (Shard(0),):
        raise ValueError(f"{name}: placement {p.placements}, expected (Shard(0),)")
    want = flat_range(tuple(p.shape), ctx.rank, ctx.world).size
    if p.to_local().numel() != want:
        raise ValueError(f"{name}: local shard has {p.to_local().numel()} values, expected {want}")


def shard_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Global parameter shapes (what the protocol addresses), sharded or not."""
    return {n: tuple(p.shape) for n, p in model.named_parameters()}
