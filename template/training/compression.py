"""SparseLoCo compression: error feedback, chunked top-k, 2-bit values, compact wire tensors.

Per parameter tensor (all array operations, CPU or CUDA):

    e <- beta * e + delta                  (error feedback, kept across windows)
    keep the top-k |e| of every chunk      (k = topk per chunk of `chunk` values)
    quantise kept values: sign x magnitude bucket, codebook = mean |v| per bucket
    e <- e - dequantised(kept)             (what was sent leaves the buffer)

``encode``/``decode`` turn a ``CompressedDelta`` into a handful of uint8 streams plus one
float32 codebook table and back, exactly; ``decode`` is strict (``WireError``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from template.hparams import CompressionConfig
from template.training.envelope import WireError
from template.training.index_coding import (
    best_golomb_parameter,
    decode_positions_host,
    encode_positions,
    gaps_from_positions,
    pack_fixed,
    unpack_fixed,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CompressionConfig",
    "CompressedTensor",
    "CompressedDelta",
    "Compressor",
    "chunk_layout",
    "select_topk",
    "quantize",
    "dequantize",
    "encode",
    "decode",
    "shapes_digest",
    "WIRE_TENSORS",
]

WIRE_TENSORS = ("unary", "prefix", "ext", "codes", "codebook")


def chunk_layout(numel: int, chunk: int, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chunk sizes, values kept per chunk) of a flat tensor of ``numel`` values.

    Full chunks keep ``topk``; a last partial chunk of s values keeps round(topk*s/chunk),
    at least 1 and at most s.
    """
    full, rem = divmod(numel, chunk)
    sizes = [chunk] * full
    counts = [topk] * full
    if rem:
        sizes.append(rem)
        counts.append(min(rem, max(1, (topk * rem + chunk // 2) // chunk)))
    return torch.tensor(sizes, dtype=torch.int64), torch.tensor(counts, dtype=torch.int64)


def select_topk(magnitude: torch.Tensor, chunk: int, topk: int) -> torch.Tensor:
    """Flat indices (ascending) of the ``topk`` largest values of every chunk of a flat tensor."""
    n = magnitude.numel()
    full, rem = divmod(n, chunk)
    parts = []
    if full:
        rows = magnitude[: full * chunk].view(full, chunk)
        idx = torch.topk(rows, min(topk, chunk), dim=1, sorted=False).indices.sort(dim=1).values
        offsets = torch.arange(full, device=magnitude.device).view(-1, 1) * chunk
        parts.append((idx + offsets).view(-1))
    if rem:
        k = int(chunk_layout(rem, chunk, topk)[1][-1])
        tail = torch.topk(magnitude[full * chunk :], k, sorted=False).indices.sort().values
        parts.append(tail + full * chunk)
    if not parts:
        return torch.zeros(0, dtype=torch.int64, device=magnitude.device)
    return torch.cat(parts)


def quantize(values: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (uint8, < 2**bits) and a codebook of 2**(bits-1) magnitudes for ``values``.

    A code is 2 * bucket + (value < 0); buckets split |v| into equal-count rank ranges and
    each codebook entry is the mean |v| of its bucket (the least-squares level for it).
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"value_bits must be in [1, 8], got {bits}")
    levels = 1 << (bits - 1)
    v = values.to(torch.float32)
    mag = v.abs()
    n = v.numel()
    if levels == 1 or n == 0:
        bucket = torch.zeros(n, dtype=torch.int64, device=v.device)
    else:
        rank = torch.empty(n, dtype=torch.int64, device=v.device)
        rank[torch.argsort(mag, stable=True)] = torch.arange(n, device=v.device)
        bucket = rank * levels // n
    sums = torch.zeros(levels, dtype=torch.float32, device=v.device).index_add_(0, bucket, mag)
    hits = torch.bincount(bucket, minlength=levels).to(torch.float32)
    codebook = torch.where(hits > 0, sums / hits.clamp(min=1), torch.zeros_like(sums))
    codes = (bucket * 2 + (v < 0).to(torch.int64)).to(torch.uint8)
    return codes, codebook


def dequantize(codes: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Float32 values of ``codes`` under ``codebook`` (inverse of ``quantize`` up to rounding)."""
    c = codes.to(torch.int64)
    sign = 1.0 - 2.0 * (c & 1).to(torch.float32)
    return codebook.to(torch.float32)[c >> 1] * sign


@dataclass(frozen=True)
class CompressedTensor:
    """One tensor's sparse update: ascending flat indices, value codes and their codebook."""

    shape: tuple[int, ...]
    indices: torch.Tensor  # int64, ascending, < numel
    codes: torch.Tensor  # uint8
    codebook: torch.Tensor  # float32 [2 ** (value_bits - 1)]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def values(self) -> torch.Tensor:
        return dequantize(self.codes, self.codebook)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.numel, dtype=torch.float32, device=self.indices.device)
        out[self.indices] = self.values()
        return out.view(self.shape)

    def to(self, device: torch.device | str) -> CompressedTensor:
        return CompressedTensor(
            self.shape, self.indices.to(device), self.codes.to(device), self.codebook.to(device)
        )


@dataclass(frozen=True)
class CompressedDelta:
    """A whole upload's sparse pseudo-gradient, keyed by parameter name."""

    tensors: dict[str, CompressedTensor]

    def to_dense(self) -> dict[str, torch.Tensor]:
        return {name: t.to_dense() for name, t in self.tensors.items()}

    def sparse(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """name -> (flat int64 indices, float32 values), for averaging with overlapping indices."""
        return {name: (t.indices, t.values()) for name, t in self.tensors.items()}

    def to(self, device: torch.device | str) -> CompressedDelta:
        return CompressedDelta({name: t.to(device) for name, t in self.tensors.items()})

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: t.shape for name, t in self.tensors.items()}


class Compressor:
    """Holds a node's error-feedback buffers and compresses each window's deltas."""

    def __init__(self, config: CompressionConfig) -> None:
        if not 0 < config.topk <= config.chunk:
            raise ValueError(
                f"topk must be in (0, chunk], got topk={config.topk} chunk={config.chunk}"
            )
        self.config = config
        self.error: dict[str, torch.Tensor] = {}

    def compress(self, deltas: Mapping[str, torch.Tensor]) -> CompressedDelta:
        """Fold ``deltas`` (theta_start - theta_end) into error feedback and take what is sent."""
        cfg = self.config
        out: dict[str, CompressedTensor] = {}
        for name in sorted(deltas):
            delta = deltas[name].detach()
            e = self.error.get(name)
            if e is None:
                e = torch.zeros(delta.shape, dtype=torch.float32, device=delta.device)
            elif e.shape != delta.shape:
                raise ValueError(
                    f"delta {name!r} has shape {tuple(delta.shape)}, error buffer {tuple(e.shape)}"
                )
            e = e.to(delta.device)
            e.mul_(cfg.ef_beta).add_(delta.to(torch.float32))
            flat = e.view(-1)
            idx = select_topk(flat.abs(), cfg.chunk, cfg.topk)
            codes, codebook = quantize(flat[idx], cfg.value_bits)
            flat[idx] -= dequantize(codes, codebook)
            self.error[name] = e
            out[name] = CompressedTensor(tuple(delta.shape), idx, codes, codebook)
        return CompressedDelta(out)

    def unsend(self, sent: CompressedDelta) -> None:
        """Put back what ``compress`` took out when it reached nobody (a failed or late upload):
        the buffers hold ``beta * e + delta`` again and the next window sends it."""
        for name, t in sent.tensors.items():
            e = self.error.get(name)
            if e is not None:
                e.view(-1)[t.indices.to(e.device)] += t.values().to(e.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Error buffers by parameter name (contiguous float32; safetensors can save them)."""
        return {name: e.detach().contiguous().clone() for name, e in self.error.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore buffers saved by ``state_dict``; refuses non-float or non-finite tensors."""
        loaded = {}
        for name, t in state.items():
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise ValueError(f"error buffer {name!r} must be a finite float tensor")
            loaded[name] = t.detach().to(torch.float32).contiguous().clone()
        self.error = loaded


def shapes_digest(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """sha256 of the sorted (name, shape) list: names the parameter set an upload codes."""
    items = [[name, list(shapes[name])] for name in sorted(shapes)]
    return hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()


def _layout(shapes: Mapping[str, tuple[int, ...]], config: CompressionConfig):
    names = sorted(shapes)
    per = []
    for name in names:
        numel = 1
        for d in shapes[name]:
            numel *= int(d)
        per.append((numel, *chunk_layout(numel, config.chunk, config.topk)))
    return names, per


def encode(
    delta: CompressedDelta, config: CompressionConfig
) -> tuple[dict[str, torch.Tensor], int]:
    """Wire tensors (``WIRE_TENSORS``, on CPU) and the Golomb parameter chosen for them."""
    names, per = _layout(delta.shapes(), config)
    positions, counts, codes, books = [], [], [], []
    for name, (_, _, chunk_counts) in zip(names, per, strict=True):
        t = delta.tensors[name]
        got = torch.bincount(t.indices.cpu() // config.chunk, minlength=chunk_counts.numel())
        if got.numel() != chunk_counts.numel() or not torch.equal(got, chunk_counts):
            raise ValueError(f"tensor {name!r} does not keep the per-chunk counts of the config")
        positions.append(t.indices % config.chunk)
        counts.append(chunk_counts.to(t.indices.device))
        codes.append(t.codes)
        books.append(t.codebook.to(torch.float32))
    levels = 1 << (config.value_bits - 1)
    if not names:
        empty = torch.zeros(0, dtype=torch.uint8)
        return {
            "unary": empty,
            "prefix": empty,
            "ext": empty,
            "codes": empty,
            "codebook": torch.zeros(0, levels),
        }, 1
    pos = torch.cat(positions)
    cnt = torch.cat(counts)
    m = best_golomb_parameter(gaps_from_positions(pos, cnt), config.topk / config.chunk)
    wire = encode_positions(pos, cnt, m)
    wire["codes"] = pack_fixed(torch.cat(codes), config.value_bits)
    wire["codebook"] = torch.stack(books).view(len(names), levels)
    return {k: v.cpu().contiguous() for k, v in wire.items()}, m


def decode(
    tensors: Mapping[str, torch.Tensor],
    shapes: Mapping[str, tuple[int, ...]],
    config: CompressionConfig,
    golomb_m: int,
) -> CompressedDelta:
    """Strict inverse of ``encode`` for the parameter set ``shapes``. Raises ``WireError``."""
    if set(tensors) != set(WIRE_TENSORS):
        raise WireError(
            "unknown_key", f"wire tensors must be exactly {WIRE_TENSORS}, got {sorted(tensors)}"
        )
    if not 1 <= golomb_m <= config.chunk:
        raise WireError("bad_value", f"golomb_m {golomb_m} outside [1, {config.chunk}]")
    names = sorted(shapes)
    levels = 1 << (config.value_bits - 1)
    book = tensors["codebook"]
    if book.dtype != torch.float32 or tuple(book.shape) != (len(names), levels):
        raise WireError(
            "bad_shape",
            f"codebook must be float32 [{len(names)}, {levels}], got {book.dtype} {tuple(book.shape)}",
        )
    if not bool(torch.isfinite(book).all()):
        raise WireError("non_finite", "codebook holds NaN or Inf")
    if bool((book < 0).any()):
        raise WireError("bad_value", "codebook magnitudes must be >= 0")
    for name in WIRE_TENSORS[:4]:
        if tensors[name].dtype != torch.uint8 or tensors[name].dim() != 1:
            raise WireError("bad_dtype", f"wire tensor {name!r} must be 1-D uint8")
    if not names:
        for name in WIRE_TENSORS[:4]:
            if tensors[name].numel():
                raise WireError(
                    "size_mismatch", f"wire tensor {name!r} must be empty for no parameters"
                )
        return CompressedDelta({})
    named = tuple((n, tuple(int(d) for d in shapes[n])) for n in names)
    layout = _host_layout(named, config.chunk, config.topk)
    streams = {k: tensors[k].detach().cpu().numpy() for k in ("unary", "prefix", "ext")}
    pos = decode_positions_host(streams, layout.counts, layout.limits, golomb_m)
    total = int(layout.limits.size)
    codes = unpack_fixed(tensors["codes"], config.value_bits, total, "codes").to(torch.uint8)
    flat = torch.from_numpy(layout.starts + pos)
    out: dict[str, CompressedTensor] = {}
    for i, name in enumerate(names):
        sl = slice(int(layout.bounds[i]), int(layout.bounds[i + 1]))
        out[name] = CompressedTensor(layout.shapes[i], flat[sl], codes[sl], book[i].clone())
    return CompressedDelta(out)


@dataclass(frozen=True)
class _HostLayout:
    """Per kept value of a parameter set: its chunk's flat start and size; per chunk: its count."""

    shapes: tuple[tuple[int, ...], ...]
    counts: np.ndarray  # values kept per chunk, all tensors in name order
    starts: np.ndarray  # flat offset of each kept value's chunk inside its tensor
    limits: np.ndarray  # size of each kept value's chunk
    bounds: np.ndarray  # kept values before each tensor (len(names) + 1)


@functools.lru_cache(maxsize=2)
def _host_layout(named: tuple[tuple[str, tuple[int, ...]], ...], chunk: int, topk: int):
    """The decoder's index arithmetic for one parameter set, computed once per set."""
    counts, starts, limits, kept = [], [], [], [0]
    for _, shape in named:
        sizes, c = (t.numpy() for t in chunk_layout(math.prod(shape), chunk, topk))
        counts.append(c)
        starts.append(np.repeat(np.arange(sizes.size, dtype=np.int64) * chunk, c))
        limits.append(np.repeat(sizes, c))
        kept.append(int(c.sum()))
    frozen = [np.concatenate(a) for a in (counts, starts, limits)] + [np.cumsum(kept)]
    for a in frozen:
        a.flags.writeable = False
    return _HostLayout(tuple(shape for _, shape in named), *frozen)
