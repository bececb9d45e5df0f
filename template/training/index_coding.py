"""Compact, exact, vectorised coding of top-k positions inside fixed-size chunks.

Each chunk keeps a known number of sorted positions, so only the gaps between them are
sent (the first gap counts from -1). Gaps of a k-of-n selection are close to geometric, and
Golomb coding with parameter M is near-optimal for geometric sources. A Golomb code word is
split over three bit streams so that every stream decodes with array operations:

- ``unary``:  quotient q = gap // M as q ones then a zero (decoded by locating the zeros);
- ``prefix``: the remainder r = gap % M in truncated binary, first b-1 bits, fixed width;
- ``ext``:    the last truncated-binary bit, present only for prefixes >= u = 2^b - M.

(b = ceil(log2 M).) Decoding is strict: stream lengths and padding must be exactly what the
encoder writes, and every decoded position must lie inside its chunk. See docs/compression.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from template.training.envelope import WireError

STREAMS = ("unary", "prefix", "ext")


def golomb_parameter(density: float) -> int:
    """The optimal Golomb M for gaps of a Bernoulli(density) process."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if density >= 0.5:
        return 1
    return max(1, math.ceil(-math.log2(2.0 - density) / math.log2(1.0 - density)))


def _split(m: int) -> tuple[int, int]:
    """(b, u) of truncated binary for alphabet size m: b = ceil(log2 m), u = 2^b - m."""
    b = (m - 1).bit_length()
    return b, (1 << b) - m


def gaps_from_positions(positions: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Gaps between consecutive sorted in-chunk positions; each chunk's first gap counts from -1."""
    if positions.numel() == 0:
        return positions.clone()
    prev = torch.empty_like(positions)
    prev[0] = -1
    prev[1:] = positions[:-1]
    starts = torch.cumsum(counts, 0) - counts
    prev[starts[counts > 0]] = -1
    return positions - prev - 1


def positions_from_gaps(gaps: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Inverse of ``gaps_from_positions``: a cumulative sum restarted at every chunk."""
    out = _positions_from_gaps(_host(gaps).astype(np.int64), _host(counts).astype(np.int64))
    return torch.from_numpy(out).to(gaps.device)


def _positions_from_gaps(gaps: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if gaps.size == 0:
        return gaps.copy()
    c = np.cumsum(gaps + 1)
    before = np.concatenate([np.zeros(1, dtype=np.int64), c[:-1]])
    starts = np.cumsum(counts) - counts
    return c - np.repeat(before[np.minimum(starts, gaps.size - 1)], counts) - 1


def coded_bits(gaps: torch.Tensor, m: int) -> int:
    """Total bits of the three streams (before byte padding) for Golomb parameter ``m``."""
    b, u = _split(m)
    q = torch.div(gaps, m, rounding_mode="floor")
    n = gaps.numel()
    bits = int(q.sum()) + n
    if b > 0:
        r = gaps - q * m
        bits += n * (b - 1) + int((r >= u).sum())
    return bits


def best_golomb_parameter(gaps: torch.Tensor, density: float, spread: int = 6) -> int:
    """The M near ``golomb_parameter(density)`` that codes these gaps in the fewest bits."""
    m0 = golomb_parameter(density)
    candidates = range(max(1, m0 - spread), m0 + spread + 1)
    return min(candidates, key=lambda m: (coded_bits(gaps, m), m))


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """0/1 values (MSB first) into uint8 bytes, zero-padded to a whole byte."""
    packed = np.packbits(_host(bits).astype(np.bool_))
    return torch.from_numpy(packed).to(bits.device)


def unpack_bits(data: torch.Tensor) -> torch.Tensor:
    """uint8 bytes into 0/1 uint8 bits, MSB first."""
    return torch.from_numpy(np.unpackbits(_host_bytes(data, "bits"))).to(data.device)


def pack_fixed(values: torch.Tensor, width: int) -> torch.Tensor:
    """Non-negative integers below 2**width, each in ``width`` bits (MSB first), packed."""
    if width == 0:
        return torch.zeros(0, dtype=torch.uint8, device=values.device)
    v = _host(values).astype(np.int64).reshape(-1, 1)
    bits = (v >> np.arange(width - 1, -1, -1, dtype=np.int64)) & 1
    return torch.from_numpy(np.packbits(bits.astype(np.uint8).reshape(-1))).to(values.device)


def unpack_fixed(data: torch.Tensor, width: int, count: int, name: str) -> torch.Tensor:
    """Inverse of ``pack_fixed``; the byte length and zero padding must be exact."""
    out = _unpack_fixed(_host_bytes(data, name), width, count, name)
    return torch.from_numpy(out).to(data.device)


def _unpack_fixed(data: np.ndarray, width: int, count: int, name: str) -> np.ndarray:
    _check_length(data, width * count, name)
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(data)
    _check_padding(bits, width * count, name)
    rows = bits[: width * count].reshape(count, width)
    out = rows[:, 0].astype(np.int64)
    for j in range(1, width):  # width <= 63 columns, each one vector operation
        out <<= 1
        out |= rows[:, j]
    return out


def encode_gaps(gaps: torch.Tensor, m: int) -> dict[str, torch.Tensor]:
    """Golomb-code non-negative int64 gaps into the three uint8 streams."""
    if m < 1:
        raise ValueError(f"Golomb parameter must be >= 1, got {m}")
    device = gaps.device
    q = torch.div(gaps, m, rounding_mode="floor")
    r = gaps - q * m
    ends = torch.cumsum(q + 1, 0) - 1  # the terminating zero of each unary word
    unary = torch.ones(int(ends[-1]) + 1 if gaps.numel() else 0, dtype=torch.uint8, device=device)
    unary[ends] = 0
    b, u = _split(m)
    if b == 0:
        prefix = torch.zeros(0, dtype=torch.uint8, device=device)
        ext = torch.zeros(0, dtype=torch.uint8, device=device)
    else:
        long = r >= u
        v = torch.where(long, r + u, r << 1)  # long words: b bits; short words: b-1 bits, shifted
        prefix = pack_fixed(v >> 1, b - 1)
        ext = pack_bits(v[long] & 1)
    return {"unary": pack_bits(unary), "prefix": prefix, "ext": ext}


def decode_gaps(streams: dict[str, torch.Tensor], count: int, m: int) -> torch.Tensor:
    """Inverse of ``encode_gaps`` for exactly ``count`` gaps. Raises ``WireError``."""
    device = streams["unary"].device
    return torch.from_numpy(_decode_gaps(_host_streams(streams), count, m)).to(device)


def _decode_gaps(
    streams: dict[str, np.ndarray], count: int, m: int, max_unary_bits: int | None = None
) -> np.ndarray:
    """``decode_gaps`` on host arrays: the unary words end at the zero bits (one
    ``flatnonzero``), the remainders are fixed-width rows plus a gathered extension bit.
    A unary stream longer than ``max_unary_bits`` is refused before it is unpacked."""
    if m < 1:
        raise WireError("bad_value", f"Golomb parameter must be >= 1, got {m}")
    if max_unary_bits is not None and streams["unary"].size > -(-max_unary_bits // 8):
        raise WireError("size_mismatch", f"unary stream is longer than {max_unary_bits} bits")
    bits = np.unpackbits(streams["unary"])
    zeros = np.flatnonzero(bits == 0)
    if zeros.size < count:
        raise WireError("truncated", f"unary stream holds {zeros.size} words, expected {count}")
    used = int(zeros[count - 1]) + 1 if count else 0
    _check_length(streams["unary"], used, "unary")
    _check_padding(bits, used, "unary")
    b, u = _split(m)
    if count == 0 or b == 0:
        _check_length(streams["prefix"], 0, "prefix")
        _check_length(streams["ext"], 0, "ext")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    ends = zeros[:count]
    q = np.diff(ends, prepend=-1) - 1
    if b == 0:
        return q
    r = _unpack_fixed(streams["prefix"], b - 1, count, "prefix")
    long = r >= u
    n_ext = int(np.count_nonzero(long))
    _check_length(streams["ext"], n_ext, "ext")
    ext_bits = np.unpackbits(streams["ext"])
    _check_padding(ext_bits, n_ext, "ext")
    r[long] = (r[long] << 1) + ext_bits[:n_ext] - u
    return q * m + r


def encode_positions(
    positions: torch.Tensor, counts: torch.Tensor, m: int
) -> dict[str, torch.Tensor]:
    """Code sorted in-chunk positions (``counts[i]`` of them in chunk i) as Golomb streams."""
    gaps = gaps_from_positions(positions, counts)
    if gaps.numel() and int(gaps.min()) < 0:
        raise ValueError("positions must be strictly increasing inside each chunk")
    return encode_gaps(gaps, m)


def decode_positions(
    streams: dict[str, torch.Tensor], counts: torch.Tensor, sizes: torch.Tensor, m: int
) -> torch.Tensor:
    """Inverse of ``encode_positions``; every position must fall inside its chunk of ``sizes``."""
    c = _host(counts).astype(np.int64)
    limits = np.repeat(_host(sizes).astype(np.int64), c)
    out = decode_positions_host(_host_streams(streams), c, limits, m)
    return torch.from_numpy(out).to(streams["unary"].device)


def decode_positions_host(
    streams: dict[str, np.ndarray], counts: np.ndarray, limits: np.ndarray, m: int
) -> np.ndarray:
    """``decode_positions`` on host arrays; ``limits`` is each position's chunk size
    (``np.repeat(sizes, counts)``, which a caller decoding many uploads computes once)."""
    # Gaps in a chunk of size s with k values sum to at most s - k, so their quotients by m
    # sum to at most (s - k) // m: no valid unary stream is longer than this bound.
    chunk_sizes = limits[(np.cumsum(counts) - counts)[counts > 0]]
    bound = int(limits.size) + int((chunk_sizes - counts[counts > 0]).sum()) // m
    gaps = _decode_gaps(streams, int(limits.size), m, max_unary_bits=bound)
    positions = _positions_from_gaps(gaps, counts)
    if positions.size and bool((positions >= limits).any()):
        raise WireError("index_out_of_range", "a decoded position lies past the end of its chunk")
    return positions


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _host_bytes(t: torch.Tensor, name: str) -> np.ndarray:
    """A 1-D uint8 tensor as a host array; anything else is a ``WireError``."""
    if t.dtype != torch.uint8 or t.dim() != 1:
        raise WireError("bad_dtype", f"stream {name!r} must be 1-D uint8")
    return _host(t)


def _host_streams(streams: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: _host_bytes(streams[name], name) for name in STREAMS}


def _check_length(data: np.ndarray, nbits: int, name: str) -> None:
    if data.size != -(-nbits // 8):
        reason = "truncated" if data.size < -(-nbits // 8) else "size_mismatch"
        raise WireError(reason, f"stream {name!r} has {data.size} bytes, expected {-(-nbits // 8)}")


def _check_padding(bits: np.ndarray, used: int, name: str) -> None:
    if bool(bits[used:].any()):
        raise WireError("size_mismatch", f"stream {name!r} has non-zero padding after {used} bits")
