"""SparseLoCo compression of a delta that lives in shards, with the single-process result.

Per tensor (every rank, in sorted name order):

1. ``e <- beta * e + delta`` on the local shard (the error buffer is sharded like the weights).
2. Top-k per chunk of ``chunk`` flat values. When every rank's flat start is a multiple of
   ``chunk`` (chunk-aligned shards), each rank selects on its own chunks and the result is the
   global selection. Otherwise the tensor's buffer is all-gathered (one tensor at a time, never
   the whole model) and every rank selects on the full tensor.
3. The selected values (1/64 of the tensor) are all-gathered in flat order so every rank builds
   the same 2-bit codes and codebook as ``quantize`` on one process; each rank subtracts the
   dequantised values of its own indices from its buffer.

Rank 0 gets the ``CompressedDelta`` (global indices, codes, codebook) for the upload; other
ranks get None.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from template.hparams import CompressionConfig
from template.training.compression import (
    CompressedDelta,
    CompressedTensor,
    dequantize,
    quantize,
    select_topk,
)

from .dist import DistContext
from .shard import FlatRange, flat_range


def all_gather_varlen(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenation in rank order of every rank's 1-D ``t`` (lengths may differ)."""
    n = torch.tensor([t.numel()], dtype=torch.int64, device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(ctx.world)]
    dist.all_gather(sizes, n)
    lens = [int(s) for s in sizes]
    longest = max(lens)
    padded = torch.zeros(longest, dtype=t.dtype, device=t.device)
    padded[: t.numel()] = t
    parts = [torch.empty_like(padded) for _ in range(ctx.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:k] for p, k in zip(parts, lens, strict=True)])


def chunk_aligned(shape: tuple[int, ...], chunk: int, world: int) -> bool:
    """Whether every rank's flat slice starts on a chunk boundary."""
    return all(flat_range(shape, r, world).start % chunk == 0 for r in range(world))


class ShardedCompressor:
    """A node's error-feedback buffers as local shards, compressing like ``Compressor``."""

    def __init__(self, config: CompressionConfig, ctx: DistContext) -> None:
        if not 0 < config.topk <= config.chunk:
            raise ValueError(f"topk must be in (0, chunk], got {config.topk}/{config.chunk}")
        self.config, self.ctx = config, ctx
        self.error: dict[str, torch.Tensor] = {}  # local flat fp32 shards
        self.gathered = 0  # tensors compressed through the all-gather path (not aligned)

    def compress(
        self, deltas: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]]
    ) -> CompressedDelta | None:
        """Fold the local ``deltas`` into error feedback and select what is sent (collective)."""
        out: dict[str, CompressedTensor] = {}
        for name in sorted(deltas):
            shape = tuple(shapes[name])
            rng = flat_range(shape, self.ctx.rank, self.ctx.world)
            delta = deltas[name].detach().reshape(-1).to(torch.float32)
            if delta.numel() != rng.size:
                raise ValueError(f"delta {name!r}: {delta.numel()} local values, want {rng.size}")
            e = self.error.get(name)
            if e is None:
                e = torch.zeros(rng.size, dtype=torch.float32, device=delta.device)
            e = e.to(delta.device)
            e.mul_(self.config.ef_beta).add_(delta)
            self.error[name] = e
            tensor = self._compress_one(e, shape, rng)
            if tensor is not None:
                out[name] = tensor
        return CompressedDelta(out) if self.ctx.is_main else None

    def _compress_one(
        self, e: torch.Tensor, shape: tuple[int, ...], rng: FlatRange
    ) -> CompressedTensor | None:
        cfg = self.config
        if chunk_aligned(shape, cfg.chunk, self.ctx.world):
            local_idx = (
                select_topk(e.abs(), cfg.chunk, cfg.topk)
                if e.numel()
                else e.new_zeros(0, dtype=torch.int64)
            )
            idx = all_gather_varlen(local_idx + rng.start, self.ctx)
            values = all_gather_varlen(e[local_idx], self.ctx)
        else:
            self.gathered += 1
            full = all_gather_varlen(e, self.ctx)
            idx = select_topk(full.abs(), cfg.chunk, cfg.topk)
            values = full[idx]
            del full
        codes, codebook = quantize(values, cfg.value_bits)
        mine = (idx >= rng.start) & (idx < rng.stop)
        e[idx[mine] - rng.start] -= dequantize(codes[mine], codebook)
        if not self.ctx.is_main:
            return None
        return CompressedTensor(shape, idx, codes, codebook)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: e.detach().clone() for n, e in self.error.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        loaded = {}
        for name, t in state.items():
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise ValueError(f"error buffer {name!r} must be a finite float tensor")
            loaded[name] = t.detach().to(torch.float32).reshape(-1).clone()
        self.error = loaded
