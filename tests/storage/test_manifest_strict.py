"""The manifest parser refuses hostile documents with DatasetError, never another exception."""

from __future__ import annotations

import json

import pytest

from template.training.shards import DatasetError, parse_manifest

SHA = "0" * 64


def manifest(name: str = "shard_00000.bin", **extra) -> str:
    doc = {
        "format": "template-shards/1",
        "dtype": "uint16",
        "vocab_size": 257,
        "tokenizer": "byte",
        "shards": [{"name": name, "tokens": 4, "bytes": 8, "sha256": SHA}],
    }
    doc.update(extra)
    return json.dumps(doc)


def test_a_valid_manifest_parses():
    assert parse_manifest(manifest()).shards[0].name == "shard_00000.bin"


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("open_close", [("[", "]"), ('{"a":', "}")])
def test_deep_nesting_is_a_dataset_error(depth, open_close):
    a, b = open_close
    with pytest.raises(DatasetError, match="nested too deeply"):
        parse_manifest(a * depth + "1" + b * depth)
    nested = manifest()[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(DatasetError):
        parse_manifest(nested)


@pytest.mark.parametrize(
    "name",
    [
        "shard_00000.bin\n",
        "shard_0000\u0661.bin",  # ARABIC-INDIC DIGIT ONE
        "shard_\uff10\uff10\uff10\uff10\uff10.bin",  # fullwidth digits
        "shard_00000.bin\x00",
        "../shard_00000.bin",
        "shard_0000.bin",
    ],
)
def test_shard_names_are_plain_ascii(name):
    with pytest.raises(DatasetError, match="bad shard name"):
        parse_manifest(manifest(name))


def test_oversized_manifest_refused():
    with pytest.raises(DatasetError, match="over"):
        parse_manifest(b" " * (64 * 1024 * 1024 + 1))
