"""The signed upload format and the generic envelope: every bad input is one clear WireError."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest
import torch
from safetensors.torch import load, save

from template import SPEC_VERSION
from template.hparams import CompressionConfig
from template.signing import dev_keypair, sign
from template.training.compression import Compressor, chunk_layout
from template.training.envelope import (
    Schema,
    TensorRule,
    WireError,
    canonical_json,
    pack_signed,
    payload_digest,
    unpack_signed,
)
from template.training.index_coding import encode_gaps
from template.training.wire import UPLOAD_KIND, decode_upload, encode_upload, upload_size_cap

KEY = dev_keypair("//Alice")
OTHER = dev_keypair("//Bob")
CFG = CompressionConfig()
SHAPES = {"w": (300, 50), "b": (50,), "s": ()}
HASH = "ab" * 32
EXPECTED = {
    "window": 7,
    "uid": 3,
    "hotkey": KEY.ss58_address,
    "spec_version": SPEC_VERSION,
    "hparams_hash": HASH,
}
CAP = 1 << 20


@pytest.fixture(scope="module")
def delta():
    gen = torch.Generator().manual_seed(0)
    return Compressor(CFG).compress({n: torch.randn(s, generator=gen) for n, s in SHAPES.items()})


@pytest.fixture(scope="module")
def blob(delta):
    return encode_upload(delta, window=7, uid=3, hparams_hash=HASH, config=CFG, key=KEY)


def decode_(blob, max_bytes=CAP, expected=EXPECTED, shapes=SHAPES, config=CFG):
    return decode_upload(
        blob, max_bytes=max_bytes, expected=expected, param_shapes=shapes, config=config
    )


def reason_of(blob, **kw) -> str:
    with pytest.raises(WireError) as err:
        decode_(blob, **kw)
    return err.value.reason


def contents(blob):
    """(header fields without the envelope keys, tensors) of a valid blob."""
    n = struct.unpack("<Q", blob[:8])[0]
    meta = json.loads(blob[8 : 8 + n])["__metadata__"]
    header = json.loads(meta["header"])
    for k in ("kind", "signer", "payload_sha256"):
        header.pop(k)
    return header, load(blob)


def repack(blob, key=KEY, header_update=None, drop_fields=(), tensors_update=None, drop_tensors=()):
    header, tensors = contents(blob)
    header.update(header_update or {})
    tensors.update(tensors_update or {})
    for k in drop_fields:
        header.pop(k)
    for k in drop_tensors:
        tensors.pop(k)
    return pack_signed(tensors, header, key, kind=UPLOAD_KIND)


def split_raw(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def join_raw(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_roundtrip_is_exact_and_verified(blob, delta):
    up = decode_(blob, max_bytes=upload_size_cap(SHAPES, CFG))
    assert (up.window, up.uid, up.hotkey, up.hparams_hash) == (7, 3, KEY.ss58_address, HASH)
    for name, t in delta.tensors.items():
        got = up.delta.tensors[name]
        assert torch.equal(got.indices, t.indices) and torch.equal(got.codes, t.codes)
        assert torch.equal(got.codebook, t.codebook) and got.shape == t.shape
    assert len(blob) <= upload_size_cap(SHAPES, CFG)


def test_size_cap_is_checked_first(blob):
    assert reason_of(blob, max_bytes=len(blob) - 1) == "oversized"
    assert reason_of(b"\x00" * 100, max_bytes=10) == "oversized"


def test_truncated(blob):
    for cut in (0, 5, 8, 100, len(blob) - 10, len(blob) - 1):
        assert reason_of(blob[:cut]) == "truncated", cut


def test_wrong_dtype(blob):
    _, tensors = contents(blob)
    bad = repack(blob, tensors_update={"codes": tensors["codes"].to(torch.int16)})
    assert reason_of(bad) == "bad_dtype"
    bad = repack(blob, tensors_update={"codebook": tensors["codebook"].to(torch.float64)})
    assert reason_of(bad) == "bad_dtype"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_codebook(blob, value):
    _, tensors = contents(blob)
    book = tensors["codebook"].clone()
    book[1, 0] = value
    assert reason_of(repack(blob, tensors_update={"codebook": book})) == "non_finite"


def test_out_of_range_indices(blob):
    # 'b' (first in name order) has one chunk of 50 keeping 1 value; put it at position 4000.
    total = sum(
        int(chunk_layout(math.prod(s), CFG.chunk, CFG.topk)[1].sum()) for s in SHAPES.values()
    )
    gaps = torch.zeros(total, dtype=torch.int64)
    gaps[0] = 4000
    forged = encode_gaps(gaps, 44)
    bad = repack(blob, header_update={"golomb_m": 44}, tensors_update=forged)
    assert reason_of(bad) == "index_out_of_range"


def test_unknown_and_missing_keys(blob):
    assert reason_of(repack(blob, header_update={"extra": 1})) == "unknown_key"
    assert (
        reason_of(repack(blob, tensors_update={"extra": torch.zeros(1, dtype=torch.uint8)}))
        == "unknown_key"
    )
    assert reason_of(repack(blob, drop_fields=("uid",))) == "missing_key"
    assert reason_of(repack(blob, drop_tensors=("ext",))) == "missing_key"


def test_wrong_header_types(blob):
    assert reason_of(repack(blob, header_update={"window": True})) == "bad_type"
    assert reason_of(repack(blob, header_update={"uid": "3"})) == "bad_type"


def test_forged_and_tampered_signatures(blob):
    # Bob signs a header that claims to be Alice's.
    header, tensors = contents(blob)
    full = dict(
        header, kind=UPLOAD_KIND, signer=KEY.ss58_address, payload_sha256=payload_digest(tensors)
    )
    text = canonical_json(full)
    forged = save(tensors, metadata={"header": text.decode(), "signature": sign(OTHER, text)})
    assert reason_of(forged) == "bad_signature"
    # Alice's header with the window changed after signing.
    raw, data = split_raw(blob)
    raw["__metadata__"]["header"] = raw["__metadata__"]["header"].replace(
        '"window":7', '"window":8'
    )
    assert reason_of(join_raw(raw, data), expected={}) == "bad_signature"
    # Bob signing honestly as himself does not pass as Alice's upload.
    bobs = repack(blob, key=OTHER, header_update={"hotkey": OTHER.ss58_address})
    assert reason_of(bobs) == "field_mismatch"
    # ... and a hotkey field that differs from the signer is refused even without expectations.
    assert reason_of(repack(blob, key=OTHER), expected={}) == "field_mismatch"


def test_header_that_lies_about_sizes(blob):
    raw, data = split_raw(blob)
    name = "codes"
    start, end = raw[name]["data_offsets"]
    lies = {
        "shape": dict(raw[name], shape=[raw[name]["shape"][0] + 1]),
        "offsets": dict(raw[name], data_offsets=[start, end + 1]),
        "overlap": dict(raw[name], data_offsets=[start - 1, end - 1]),
        "negative": dict(raw[name], shape=[-1]),
    }
    for what, entry in lies.items():
        with pytest.raises(WireError) as err:
            decode_(join_raw(dict(raw, **{name: entry}), data))
        assert err.value.reason in {"size_mismatch", "bad_shape"}, what
    assert reason_of(join_raw(raw, data + b"\x00")) == "size_mismatch"  # bytes nobody claims
    assert reason_of(struct.pack("<Q", 10**9) + blob[8:]) == "oversized"
    assert reason_of(struct.pack("<Q", len(blob)) + blob[8:]) == "truncated"


def test_digest_mismatch(blob):
    raw, data = split_raw(blob)
    start, _ = raw["codes"]["data_offsets"]
    flipped = bytearray(data)
    flipped[start] ^= 0x01
    assert reason_of(join_raw(raw, bytes(flipped))) == "digest_mismatch"


def test_field_mismatches(blob):
    assert reason_of(blob, expected=dict(EXPECTED, window=8)) == "field_mismatch"
    assert reason_of(blob, expected=dict(EXPECTED, hparams_hash="cd" * 32)) == "field_mismatch"
    assert reason_of(blob, shapes=dict(SHAPES, b=(51,))) == "field_mismatch"
    assert reason_of(blob, config=CompressionConfig(topk=32)) == "field_mismatch"


def test_random_garbage_and_mutations_only_raise_wire_error(blob, delta):
    rng = random.Random(1234)
    for _ in range(150):
        garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        with pytest.raises(WireError):
            decode_(garbage)
    n = struct.unpack("<Q", blob[:8])[0]
    for _ in range(150):
        mutated = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(0, 8 + n) if rng.random() < 0.7 else rng.randrange(len(blob))
            mutated[pos] = rng.getrandbits(8)
        if rng.random() < 0.2:
            mutated = mutated[: rng.randrange(len(mutated))]
        try:
            up = decode_(bytes(mutated))
        except WireError:
            continue
        # A mutation that only touched JSON whitespace may still decode: then it is unchanged.
        assert torch.equal(up.delta.tensors["w"].indices, delta.tensors["w"].indices)


def test_generic_envelope_with_custom_schema():
    schema = Schema(
        kind="peer-list",
        fields={"window": int, "peers": list},
        tensors={"scores": TensorRule("F32", ndim=1, max_numel=16)},
        extra_tensors=TensorRule("U8"),
    )
    tensors = {"scores": torch.tensor([0.5, 0.25]), "anything": torch.zeros(3, dtype=torch.uint8)}
    doc = pack_signed(tensors, {"window": 4, "peers": [1, 5]}, KEY, kind="peer-list")
    header, got, signer = unpack_signed(
        doc, max_bytes=CAP, schema=schema, expected_signer=KEY.ss58_address
    )
    assert header == {"window": 4, "peers": [1, 5]} and signer == KEY.ss58_address
    assert torch.equal(got["scores"], tensors["scores"])
    with pytest.raises(WireError) as err:
        unpack_signed(doc, max_bytes=CAP, schema=schema, expected_signer=OTHER.ss58_address)
    assert err.value.reason == "field_mismatch"
    other_kind = Schema(
        kind="aggregate",
        fields=schema.fields,
        tensors=schema.tensors,
        extra_tensors=schema.extra_tensors,
    )
    with pytest.raises(WireError) as err:
        unpack_signed(doc, max_bytes=CAP, schema=other_kind)
    assert err.value.reason == "field_mismatch"
    big = pack_signed(
        {"scores": torch.zeros(17)}, {"window": 4, "peers": []}, KEY, kind="peer-list"
    )
    with pytest.raises(WireError) as err:
        unpack_signed(big, max_bytes=CAP, schema=schema)
    assert err.value.reason == "bad_shape"
    with pytest.raises(ValueError):
        pack_signed(tensors, {"signer": "x"}, KEY, kind="peer-list")
    with pytest.raises(WireError) as err:
        unpack_signed("not bytes", max_bytes=CAP, schema=schema)  # type: ignore[arg-type]
    assert err.value.reason == "malformed"


def test_signed_hostile_streams_only_raise_wire_error(blob, delta):
    """A peer that signs its own garbage streams passes the envelope; the stream decoder
    must still answer only WireError (or an upload of the right shape)."""
    from template.training.wire import decode_streams, open_upload  # noqa: PLC0415

    rng = random.Random(99)
    _, tensors = contents(blob)
    outcomes = set()
    for trial in range(60):
        name = ("unary", "prefix", "ext", "codes")[trial % 4]
        data = bytearray(tensors[name].numpy().tobytes())
        if data and rng.random() < 0.5:
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        elif rng.random() < 0.5:
            data = data[: rng.randrange(len(data) + 1)]
        else:
            data += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        bad = repack(
            blob,
            tensors_update={name: torch.tensor(list(data), dtype=torch.uint8)},
        )
        opened = open_upload(
            bad, max_bytes=CAP, expected=EXPECTED, param_shapes=SHAPES, config=CFG
        )  # the envelope is valid: only the streams are hostile
        try:
            up = decode_streams(opened, param_shapes=SHAPES, config=CFG)
        except WireError as e:
            outcomes.add(e.reason)
            continue
        outcomes.add("decoded")
        for n, t in delta.tensors.items():
            assert up.delta.tensors[n].indices.numel() == t.indices.numel()
            assert int(up.delta.tensors[n].indices.max()) < t.numel
    assert {"size_mismatch", "truncated"} <= outcomes


def test_decoded_indices_are_private_to_each_upload(blob, delta):
    """Decoding reuses a cached layout; an upload's tensors must not alias it or each other."""
    first = decode_(blob)
    first.delta.tensors["w"].indices.add_(1)
    second = decode_(blob)
    assert torch.equal(second.delta.tensors["w"].indices, delta.tensors["w"].indices)
