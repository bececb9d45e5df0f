"""Error feedback, chunked top-k, quantisation and the exact encode/decode of compressed deltas."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load, save

from template.hparams import CompressionConfig
from template.training.compression import (
    CompressedDelta,
    CompressedTensor,
    Compressor,
    chunk_layout,
    decode,
    dequantize,
    encode,
    quantize,
    select_topk,
)
from template.training.envelope import WireError

SHAPES = {
    "embed": (300, 40),  # 12000: two full chunks of 4096 and a partial one
    "norm": (40,),  # smaller than a chunk
    "scalar": (),
    "proj": (64, 64),  # exactly one chunk
    "empty": (0, 8),
}


def random_deltas(shapes, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=gen).to(device) for n, s in shapes.items()}


def assert_same(a: CompressedDelta, b: CompressedDelta, exact_codebook: bool = True) -> None:
    assert a.tensors.keys() == b.tensors.keys()
    for name, ta in a.tensors.items():
        tb = b.tensors[name]
        assert ta.shape == tb.shape, name
        assert torch.equal(ta.indices.cpu(), tb.indices.cpu()), name
        assert torch.equal(ta.codes.cpu(), tb.codes.cpu()), name
        if exact_codebook:
            assert torch.equal(ta.codebook.cpu(), tb.codebook.cpu()), name
        else:  # CUDA sums in a different order
            torch.testing.assert_close(ta.codebook.cpu(), tb.codebook.cpu())


def test_chunk_layout_scales_the_partial_chunk():
    sizes, counts = chunk_layout(10000, 4096, 64)
    assert sizes.tolist() == [4096, 4096, 1808]
    assert counts.tolist() == [64, 64, 28]
    assert [t.tolist() for t in chunk_layout(5, 4096, 64)] == [[5], [1]]
    assert [t.tolist() for t in chunk_layout(6, 4, 4)] == [[4, 2], [4, 2]]
    assert [t.tolist() for t in chunk_layout(0, 4096, 64)] == [[], []]


def test_select_topk_takes_the_largest_of_every_chunk():
    gen = torch.Generator().manual_seed(0)
    mag = torch.rand(10, generator=gen)
    idx = select_topk(mag, 4, 2)
    expected = []
    for start, k in ((0, 2), (4, 2), (8, 1)):  # last chunk of 2 keeps round(2*2/4)=1
        part = mag[start : start + 4]
        expected += sorted((part.topk(k).indices + start).tolist())
    assert idx.tolist() == expected


def test_quantize_two_bits():
    codes, book = quantize(torch.tensor([-3.0, 2.0, 4.0, -5.0]), 2)
    assert book.tolist() == [2.5, 4.5]
    assert codes.tolist() == [1, 0, 2, 3]
    assert dequantize(codes, book).tolist() == [-2.5, 2.5, 4.5, -4.5]
    codes, book = quantize(torch.tensor([1.0, -1.0]), 1)
    assert codes.tolist() == [0, 1] and book.tolist() == [1.0]


def test_error_feedback_hand_checked():
    cfg = CompressionConfig(chunk=4, topk=2, ef_beta=0.5, value_bits=2)
    comp = Compressor(cfg)
    d1 = torch.tensor([1.0, -3.0, 0.5, 2.0, 4.0, 0.0, -5.0, -1.0])
    out = comp.compress({"w": d1})
    t = out.tensors["w"]
    assert t.indices.tolist() == [1, 3, 4, 6]
    assert t.codebook.tolist() == [2.5, 4.5]  # mean |v| below / above the median
    assert t.values().tolist() == [-2.5, 2.5, 4.5, -4.5]
    assert comp.error["w"].tolist() == [1.0, -0.5, 0.5, -0.5, -0.5, 0.0, -0.5, -1.0]
    d2 = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    out = comp.compress({"w": d2})
    # e = 0.5 * e + d2 = [0.5, -0.25, 0.25, 0.75, -0.25, 0, 0.75, -0.5]
    assert out.tensors["w"].indices.tolist() == [0, 3, 6, 7]
    assert out.tensors["w"].values().tolist() == [0.5, 0.75, 0.75, -0.5]
    assert comp.error["w"].tolist() == [0.0, -0.25, 0.25, 0.0, -0.25, 0.0, 0.0, 0.0]


def test_error_feedback_identity_on_random_steps():
    cfg = CompressionConfig(chunk=64, topk=4, ef_beta=0.9)
    comp = Compressor(cfg)
    e = {n: torch.zeros(s) for n, s in SHAPES.items()}
    for step in range(3):
        deltas = random_deltas(SHAPES, seed=step)
        sent = comp.compress(deltas).to_dense()
        for n in SHAPES:
            e[n] = cfg.ef_beta * e[n] + deltas[n] - sent[n]
            torch.testing.assert_close(comp.error[n], e[n], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "cfg",
    [
        CompressionConfig(),
        CompressionConfig(chunk=64, topk=1),
        CompressionConfig(chunk=64, topk=64),  # k == chunk: everything is sent
        CompressionConfig(chunk=100, topk=7, value_bits=3),
    ],
    ids=["default", "k1", "kfull", "odd"],
)
def test_encode_decode_roundtrips_exactly(cfg):
    comp = Compressor(cfg)
    for step in range(2):
        delta = comp.compress(random_deltas(SHAPES, seed=step))
        wire, m = encode(delta, cfg)
        assert all(t.dtype == torch.uint8 for n, t in wire.items() if n != "codebook")
        back = decode(wire, SHAPES, cfg, m)
        assert_same(delta, back)
        for n in SHAPES:
            assert torch.equal(delta.tensors[n].to_dense(), back.tensors[n].to_dense())


def test_sparse_and_dense_views_agree():
    delta = Compressor(CompressionConfig(chunk=64, topk=4)).compress(random_deltas(SHAPES))
    dense = delta.to_dense()
    for name, (idx, vals) in delta.sparse().items():
        assert dense[name].shape == SHAPES[name]
        flat = dense[name].reshape(-1)
        assert torch.equal(flat[idx], vals)
        assert int((flat != 0).sum()) <= idx.numel()


def test_decode_rejects_bad_codebook_and_lengths():
    cfg = CompressionConfig(chunk=64, topk=4)
    wire, m = encode(Compressor(cfg).compress(random_deltas(SHAPES)), cfg)
    cases = {
        "non_finite": dict(wire, codebook=wire["codebook"].clone().fill_(float("nan"))),
        "bad_value": dict(wire, codebook=-wire["codebook"]),
        "bad_shape": dict(wire, codebook=wire["codebook"][:-1]),
        "truncated": dict(wire, codes=wire["codes"][:-1]),
        "size_mismatch": dict(wire, codes=torch.cat([wire["codes"], wire["codes"][:1]])),
        "bad_dtype": dict(wire, codes=wire["codes"].to(torch.int16)),
    }
    for reason, tensors in cases.items():
        with pytest.raises(WireError) as err:
            decode(tensors, SHAPES, cfg, m)
        assert err.value.reason == reason
    with pytest.raises(WireError) as err:
        decode(wire, SHAPES, cfg, 0)
    assert err.value.reason == "bad_value"


def test_encode_refuses_counts_that_do_not_match_the_config():
    t = CompressedTensor(
        (8,), torch.tensor([0, 1, 2]), torch.zeros(3, dtype=torch.uint8), torch.ones(2)
    )
    with pytest.raises(ValueError):
        encode(CompressedDelta({"w": t}), CompressionConfig(chunk=4, topk=1))


def test_error_feedback_survives_a_safetensors_restart():
    cfg = CompressionConfig(chunk=64, topk=4)
    a = Compressor(cfg)
    a.compress(random_deltas(SHAPES, seed=0))
    b = Compressor(cfg)
    b.load_state_dict(load(save(a.state_dict())))
    nxt = random_deltas(SHAPES, seed=1)
    assert_same(a.compress(nxt), b.compress(nxt))
    with pytest.raises(ValueError):
        b.load_state_dict({"embed": torch.full((2,), float("inf"))})


def test_shape_change_is_refused():
    comp = Compressor(CompressionConfig(chunk=64, topk=4))
    comp.compress({"w": torch.randn(10)})
    with pytest.raises(ValueError):
        comp.compress({"w": torch.randn(11)})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cfg = CompressionConfig(chunk=256, topk=8)
    cpu = Compressor(cfg).compress(random_deltas(SHAPES))
    gpu = Compressor(cfg).compress(random_deltas(SHAPES, device="cuda"))
    assert_same(cpu, gpu, exact_codebook=False)
    wire, m = encode(gpu, cfg)
    assert_same(decode(wire, SHAPES, cfg, m), gpu)
