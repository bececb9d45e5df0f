import logging
import os
import random

import pytest

from template.chain.types import MAX_COMMITMENT_BYTES
from template.storage import (
    BucketConfig,
    CommitmentError,
    aws_bucket,
    decode_commitment,
    decode_commitment_strict,
    encode_commitment,
    parse_commitments,
    r2_bucket,
)

R2 = r2_bucket(os.urandom(16).hex(), "a" * 63, os.urandom(16).hex(), os.urandom(32).hex())
R2_EU = r2_bucket(
    os.urandom(16).hex(), "grads-eu", os.urandom(16).hex(), os.urandom(32).hex(), "eu"
)
AWS = aws_bucket(
    "ap-southeast-2", "my-grads", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)
GENERIC = BucketConfig(
    "http://127.0.0.1:54321", "node-7-bucket", "us-east-1", "path", "testing", "testing-secret"
)
MINIO = BucketConfig(
    "https://minio.example.org:9000", "grads", "us-east-1", "virtual", "minioread", "m" * 40
)


@pytest.mark.parametrize("cfg", [R2, R2_EU, AWS, GENERIC, MINIO])
def test_round_trip(cfg):
    data = encode_commitment(cfg)
    assert isinstance(data, bytes) and len(data) <= MAX_COMMITMENT_BYTES
    assert 0x80 <= data[0] <= 0xBF
    with pytest.raises(UnicodeDecodeError):  # never mistaken for UTF-8 text by the SDK
        data.decode("utf-8")
    assert decode_commitment(data, allow_private=True) == cfg


def test_sizes_fit_the_longest_names():
    assert len(encode_commitment(R2)) == 128  # 63-char bucket: exactly the limit
    longest_aws = aws_bucket("ap-southeast-2", "b" * 62, AWS.access_key_id, AWS.secret_access_key)
    assert len(encode_commitment(longest_aws)) <= MAX_COMMITMENT_BYTES


def test_too_long_raises_naming_the_limit():
    cfg = BucketConfig(
        "https://" + "h" * 40 + ".example.com", "b" * 40, "us-east-1", "path", "k" * 20, "s" * 40
    )
    with pytest.raises(CommitmentError, match="MAX_COMMITMENT_BYTES=128"):
        encode_commitment(cfg)


@pytest.mark.parametrize(
    "cfg",
    [
        r2_bucket("0" * 32, "grads", "not-hex", "0" * 64),
        aws_bucket("us-east-1", "grads", "short", "x" * 40),
        aws_bucket("us-east-1", "grads", "AKIAIOSFODNN7EXAMPLE", "!" * 40),
        aws_bucket("us-east-1", "Bad_Bucket", "AKIAIOSFODNN7EXAMPLE", "a" * 40),
        BucketConfig("ftp://x", "grads", "us-east-1", "path", "k", "s"),
        BucketConfig("http://x", "grads", "us-east-1", "path", "", ""),
    ],
)
def test_bad_configs_raise(cfg):
    with pytest.raises(CommitmentError):
        encode_commitment(cfg)


def test_private_endpoints_refused_unless_allowed():
    local = encode_commitment(GENERIC)
    assert decode_commitment(local) is None
    with pytest.raises(CommitmentError, match="allow_private=True"):
        decode_commitment_strict(local)
    for host in (
        "http://localhost:9000",
        "http://10.0.0.5",
        "http://169.254.169.254",
        "http://[::1]:9",
    ):
        cfg = BucketConfig(host, "grads", "us-east-1", "path", "k", "s")
        if host.startswith("http://[::1]"):
            with pytest.raises(CommitmentError):  # IPv6 literals are not accepted at all
                encode_commitment(cfg)
            continue
        assert decode_commitment(encode_commitment(cfg)) is None
        assert decode_commitment(encode_commitment(cfg), allow_private=True) == cfg
    assert decode_commitment(encode_commitment(MINIO)) == MINIO  # a public DNS name is fine
    assert parse_commitments({"hk": local}) == {}
    assert parse_commitments({"hk": local}, allow_private=True) == {"hk": GENERIC}


def test_garbage_never_crashes():
    rng = random.Random(0)
    valid = encode_commitment(GENERIC)
    samples = [b"", b"hello", "text", None, 12, b"\x81", b"\xff" * 200, valid + b"x" * 128]
    samples += [valid[:n] for n in range(len(valid))]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 129))) for _ in range(500)]
    for s in samples:
        decode_commitment(s)  # must not raise
        decode_commitment(s, allow_private=True)
    assert decode_commitment(b"hello") is None
    assert decode_commitment(b"\x99" + valid[1:]) is None
    with pytest.raises(CommitmentError, match="unknown commitment tag"):
        decode_commitment_strict(b"\x99abc")


def test_parse_commitments_skips_garbage_one_line_each(caplog):
    caplog.set_level(logging.INFO, logger="template.storage.commitment")
    out = parse_commitments(
        {
            "hk1": encode_commitment(AWS),
            "hk2": b"\x00garbage",
            "hk3": b"",
            "hk4": encode_commitment(R2),
        }
    )
    assert out == {"hk1": AWS, "hk4": R2}
    lines = [r for r in caplog.records if r.name == "template.storage.commitment"]
    assert len(lines) == 2 and {"hk2" in lines[0].message, "hk3" in lines[1].message} == {True}
