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
    if gaps.numel() == 0:
        return gaps.clone()
    c = torch.cumsum(gaps + 1, 0)
    before = torch.cat([c.new_zeros(1), c[:-1]])
    starts = torch.cumsum(counts, 0) - counts
    base = torch.repeat_interleave(before[starts.clamp(max=gaps.numel() - 1)], counts)
    return c - base - 1


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
    n = bits.numel()
    padded = torch.zeros(-(-n // 8) * 8, dtype=torch.uint8, device=bits.device)
    padded[:n] = bits.to(torch.uint8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=bits.device)
    return (padded.view(-1, 8) * weights).sum(1, dtype=torch.int32).to(torch.uint8)


def unpack_bits(data: torch.Tensor) -> torch.Tensor:
    """uint8 bytes into 0/1 uint8 bits, MSB first."""
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=data.device)
    return ((data.view(-1, 1) >> shifts) & 1).reshape(-1)


def pack_fixed(values: torch.Tensor, width: int) -> torch.Tensor:
    """Non-negative integers below 2**width, each in ``width`` bits (MSB first), packed."""
    if width == 0:
        return torch.zeros(0, dtype=torch.uint8, device=values.device)
    shifts = torch.arange(width - 1, -1, -1, dtype=torch.int64, device=values.device)
    return pack_bits(((values.to(torch.int64).view(-1, 1) >> shifts) & 1).reshape(-1))


def unpack_fixed(data: torch.Tensor, width: int, count: int, name: str) -> torch.Tensor:
    """Inverse of ``pack_fixed``; the byte length and zero padding must be exact."""
    _check_length(data, width * count, name)
    if width == 0 or count == 0:
        return torch.zeros(count, dtype=torch.int64, device=data.device)
    bits = unpack_bits(data)
    _check_padding(bits, width * count, name)
    shifts = torch.arange(width - 1, -1, -1, dtype=torch.int64, device=data.device)
    return (bits[: width * count].view(count, width).to(torch.int64) << shifts).sum(1)


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
    if m < 1:
        raise WireError("bad_value", f"Golomb parameter must be >= 1, got {m}")
    for name in STREAMS:
        t = streams[name]
        if t.dtype != torch.uint8 or t.dim() != 1:
            raise WireError("bad_dtype", f"stream {name!r} must be 1-D uint8")
    bits = unpack_bits(streams["unary"])
    zeros = torch.nonzero(bits == 0).view(-1)
    if zeros.numel() < count:
        raise WireError("truncated", f"unary stream holds {zeros.numel()} words, expected {count}")
    used = int(zeros[count - 1]) + 1 if count else 0
    _check_length(streams["unary"], used, "unary")
    _check_padding(bits, used, "unary")
    if count == 0:
        _check_length(streams["prefix"], 0, "prefix")
        _check_length(streams["ext"], 0, "ext")
        return torch.zeros(0, dtype=torch.int64, device=bits.device)
    ends = zeros[:count]
    q = torch.diff(ends, prepend=ends.new_full((1,), -1)) - 1
    b, u = _split(m)
    if b == 0:
        _check_length(streams["prefix"], 0, "prefix")
        _check_length(streams["ext"], 0, "ext")
        return q
    prefix = unpack_fixed(streams["prefix"], b - 1, count, "prefix")
    long = prefix >= u
    n_ext = int(long.sum())
    _check_length(streams["ext"], n_ext, "ext")
    ext_bits = unpack_bits(streams["ext"])
    _check_padding(ext_bits, n_ext, "ext")
    r = prefix.clone()
    r[long] = (prefix[long] << 1) + ext_bits[:n_ext].to(torch.int64) - u
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
    total = int(counts.sum())
    gaps = decode_gaps(streams, total, m)
    positions = positions_from_gaps(gaps, counts)
    if total and bool((positions >= torch.repeat_interleave(sizes, counts)).any()):
        raise WireError("index_out_of_range", "a decoded position lies past the end of its chunk")
    return positions


def _check_length(data: torch.Tensor, nbits: int, name: str) -> None:
    if data.numel() != -(-nbits // 8):
        reason = "truncated" if data.numel() < -(-nbits // 8) else "size_mismatch"
        raise WireError(
            reason, f"stream {name!r} has {data.numel()} bytes, expected {-(-nbits // 8)}"
        )


def _check_padding(bits: torch.Tensor, used: int, name: str) -> None:
    if bool(bits[used:].any()):
        raise WireError("size_mismatch", f"stream {name!r} has non-zero padding after {used} bits")
