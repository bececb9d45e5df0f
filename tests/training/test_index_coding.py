"""Golomb position streams: exact round trips (random and adversarial) and strict decoding."""

from __future__ import annotations

import math

import pytest
import torch

from template.training.envelope import WireError
from template.training.index_coding import (
    coded_bits,
    decode_gaps,
    decode_positions,
    encode_gaps,
    encode_positions,
    gaps_from_positions,
    golomb_parameter,
    pack_bits,
    pack_fixed,
    unpack_bits,
    unpack_fixed,
)

MS = (1, 2, 3, 5, 8, 20, 44, 64, 100, 4096)


def random_positions(sizes: list[int], counts: list[int], gen: torch.Generator) -> torch.Tensor:
    parts = [
        torch.randperm(n, generator=gen)[:k].sort().values
        for n, k in zip(sizes, counts, strict=True)
    ]
    return torch.cat(parts)


def roundtrip(positions: torch.Tensor, sizes: list[int], counts: list[int], m: int) -> torch.Tensor:
    c, s = torch.tensor(counts), torch.tensor(sizes)
    return decode_positions(encode_positions(positions, c, m), c, s, m)


def test_golomb_parameter_matches_the_known_optimum():
    assert golomb_parameter(64 / 4096) == 44
    assert golomb_parameter(0.5) == 1
    assert golomb_parameter(1.0) == 1
    with pytest.raises(ValueError):
        golomb_parameter(0.0)


@pytest.mark.parametrize("m", MS)
def test_random_positions_roundtrip_exactly(m):
    gen = torch.Generator().manual_seed(m)
    sizes = [4096] * 20 + [1808]
    counts = [64] * 20 + [28]
    positions = random_positions(sizes, counts, gen)
    assert torch.equal(roundtrip(positions, sizes, counts, m), positions)


@pytest.mark.parametrize("m", MS)
def test_adversarial_gap_patterns_roundtrip_exactly(m):
    n, k = 256, 16
    patterns = {
        "all_at_start": torch.arange(k),
        "all_at_end": torch.arange(n - k, n),
        "spread_max": torch.arange(k) * (n // k) + (n // k - 1),
        "first_and_last": torch.tensor([0] + list(range(n - k + 1, n))),
    }
    for name, pos in patterns.items():
        assert torch.equal(roundtrip(pos, [n], [k], m), pos), name
    full = torch.arange(n)  # k == chunk size: every gap is zero
    assert torch.equal(roundtrip(full, [n], [n], m), full)
    for one in (0, n - 1):  # k == 1 at either end, then a partial chunk of one value
        pos = torch.tensor([one, 0])
        assert torch.equal(roundtrip(pos, [n, 1], [1, 1], m), pos)


def test_many_small_chunks_with_mixed_counts():
    gen = torch.Generator().manual_seed(1)
    sizes = [int(s) for s in torch.randint(1, 50, (300,), generator=gen)]
    counts = [int(torch.randint(1, s + 1, (1,), generator=gen)) for s in sizes]
    positions = random_positions(sizes, counts, gen)
    for m in (1, 3, 7):
        assert torch.equal(roundtrip(positions, sizes, counts, m), positions)


def test_gaps_restart_at_every_chunk():
    gaps = gaps_from_positions(torch.tensor([0, 5, 9, 2, 3]), torch.tensor([3, 2]))
    assert gaps.tolist() == [0, 4, 3, 2, 0]


def test_coded_bits_matches_stream_sizes():
    gen = torch.Generator().manual_seed(2)
    gaps = torch.randint(0, 300, (1000,), generator=gen)
    for m in (1, 2, 44, 64):
        streams = encode_gaps(gaps, m)
        nbytes = sum(t.numel() for t in streams.values())
        assert math.ceil(coded_bits(gaps, m) / 8) <= nbytes <= coded_bits(gaps, m) / 8 + 3
        assert torch.equal(decode_gaps(streams, gaps.numel(), m), gaps)


def test_bits_per_index_near_the_information_bound():
    gen = torch.Generator().manual_seed(3)
    n, k, chunks = 4096, 64, 200
    positions = random_positions([n] * chunks, [k] * chunks, gen)
    gaps = gaps_from_positions(positions, torch.full((chunks,), k))
    per_index = coded_bits(gaps, 44) / (k * chunks)
    bound = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2) / k
    assert bound < per_index < bound + 0.15  # Golomb-44 costs ~7.44 vs 7.36 bits; 12 naive


def test_bit_packing_roundtrips():
    gen = torch.Generator().manual_seed(4)
    bits = torch.randint(0, 2, (1001,), generator=gen, dtype=torch.uint8)
    packed = pack_bits(bits)
    assert packed.numel() == 126
    assert torch.equal(unpack_bits(packed)[:1001], bits)
    values = torch.randint(0, 32, (77,), generator=gen)
    assert torch.equal(unpack_fixed(pack_fixed(values, 5), 5, 77, "v"), values)


def test_decoder_rejects_trailing_bytes_and_dirty_padding():
    streams = encode_gaps(torch.tensor([3, 0, 50]), 44)
    extra = dict(streams, unary=torch.cat([streams["unary"], torch.zeros(1, dtype=torch.uint8)]))
    with pytest.raises(WireError) as err:
        decode_gaps(extra, 3, 44)
    assert err.value.reason == "size_mismatch"
    dirty = dict(streams, prefix=streams["prefix"].clone())
    dirty["prefix"][-1] |= 1  # 3 words x 5 bits = 15 bits: the 16th is padding
    with pytest.raises(WireError) as err:
        decode_gaps(dirty, 3, 44)
    assert err.value.reason == "size_mismatch"


def test_decoder_rejects_too_few_words():
    streams = encode_gaps(torch.tensor([3, 0]), 44)
    with pytest.raises(WireError) as err:
        decode_gaps(streams, 9, 44)
    assert err.value.reason == "truncated"


def test_decoder_rejects_positions_past_the_chunk():
    counts, sizes = torch.tensor([2]), torch.tensor([64])
    streams = encode_gaps(torch.tensor([10, 60]), 44)  # second position = 71 >= 64
    with pytest.raises(WireError) as err:
        decode_positions(streams, counts, sizes, 44)
    assert err.value.reason == "index_out_of_range"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_roundtrip_on_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(5)
    sizes, counts = [4096] * 50, [64] * 50
    positions = random_positions(sizes, counts, gen)
    c = torch.tensor(counts)
    cpu = encode_positions(positions, c, 44)
    gpu = encode_positions(positions.cuda(), c.cuda(), 44)
    for name in cpu:
        assert torch.equal(cpu[name], gpu[name].cpu())
    back = decode_positions(
        {k: v.cuda() for k, v in cpu.items()}, c.cuda(), torch.tensor(sizes).cuda(), 44
    )
    assert torch.equal(back.cpu(), positions)


def reference_decode_gaps(streams: dict[str, torch.Tensor], count: int, m: int) -> list[int]:
    """A bit-by-bit Golomb decoder written from the stream definitions, for cross-checking."""
    b = (m - 1).bit_length()
    u = (1 << b) - m

    def bits_of(name):
        return [(byte >> (7 - i)) & 1 for byte in streams[name].tolist() for i in range(8)]

    unary, prefix, ext = bits_of("unary"), bits_of("prefix"), bits_of("ext")
    ui = pi = ei = 0
    out = []
    for _ in range(count):
        q = 0
        while unary[ui]:
            q, ui = q + 1, ui + 1
        ui += 1
        r = 0
        for _ in range(max(b - 1, 0)):
            r, pi = (r << 1) | prefix[pi], pi + 1
        if b and r >= u:
            r, ei = ((r << 1) | ext[ei]) - u, ei + 1
        out.append(q * m + r)
    return out


@pytest.mark.parametrize("m", (1, 2, 3, 7, 44, 64, 100))
def test_vectorised_decoder_matches_a_bit_by_bit_reference(m):
    gen = torch.Generator().manual_seed(10 + m)
    gaps = torch.randint(0, 4 * m + 3, (300,), generator=gen)
    streams = encode_gaps(gaps, m)
    assert decode_gaps(streams, 300, m).tolist() == reference_decode_gaps(streams, 300, m)
    assert decode_gaps(streams, 300, m).tolist() == gaps.tolist()


def test_non_uint8_or_multidimensional_streams_are_bad_dtype():
    streams = encode_gaps(torch.tensor([3, 0, 50]), 44)
    for bad in (streams["unary"].to(torch.int16), streams["unary"].view(1, -1)):
        with pytest.raises(WireError) as err:
            decode_gaps(dict(streams, unary=bad), 3, 44)
        assert err.value.reason == "bad_dtype"
    with pytest.raises(WireError) as err:
        unpack_fixed(torch.zeros(2, dtype=torch.float32), 5, 3, "codes")
    assert err.value.reason == "bad_dtype"


def test_hostile_streams_only_raise_wire_error_or_decode_in_range():
    """Byte flips, truncations and extensions of valid streams (as a peer that signs its own
    garbage sends them): a WireError, or exactly ``total`` positions inside their chunks."""
    rng = torch.Generator().manual_seed(6)
    sizes, counts = [4096] * 8 + [700], [64] * 8 + [11]
    c, s = torch.tensor(counts), torch.tensor(sizes)
    valid = encode_positions(random_positions(sizes, counts, rng), c, 44)
    decoded = rejected = 0
    for trial in range(400):
        streams = {k: v.clone() for k, v in valid.items()}
        name = ("unary", "prefix", "ext")[trial % 3]
        t = streams[name]
        action = int(torch.randint(0, 3, (1,), generator=rng))
        if action == 0 and t.numel():
            at = torch.randint(0, t.numel(), (3,), generator=rng)
            t[at] = torch.randint(0, 256, (3,), generator=rng, dtype=torch.uint8)
        elif action == 1:
            streams[name] = t[: int(torch.randint(0, t.numel() + 1, (1,), generator=rng))]
        else:
            extra = torch.randint(0, 256, (int(torch.randint(1, 9, (1,), generator=rng)),))
            streams[name] = torch.cat([t, extra.to(torch.uint8)])
        try:
            got = decode_positions(streams, c, s, 44)
        except WireError:
            rejected += 1
            continue
        decoded += 1
        assert got.numel() == sum(counts)
        assert bool((got < torch.repeat_interleave(s, c)).all()) and int(got.min()) >= 0
    assert rejected > 200 and decoded > 0  # both outcomes are exercised


def test_unary_stream_longer_than_any_valid_one_is_refused_up_front():
    """Bound: a chunk of size s with k values has gaps summing to at most s - k. The tightest
    valid stream (every value at the chunk's end, m = 1) passes; one byte more does not."""
    counts, sizes = torch.tensor([16, 16]), torch.tensor([256, 256])
    at_end = torch.cat([torch.arange(240, 256), torch.arange(240, 256)])
    streams = encode_positions(at_end, counts, 1)
    assert streams["unary"].numel() == 2 * 256 // 8  # exactly the bound
    assert torch.equal(decode_positions(streams, counts, sizes, 1), at_end)
    longer = dict(streams, unary=torch.cat([streams["unary"], torch.full((1,), 255).byte()]))
    with pytest.raises(WireError, match="longer than 512 bits") as err:
        decode_positions(longer, counts, sizes, 1)
    assert err.value.reason == "size_mismatch"
