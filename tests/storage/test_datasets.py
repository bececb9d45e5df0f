import hashlib
import json
import logging

import numpy as np
import pytest

from template.storage import (
    ChecksumMismatch,
    InvalidManifest,
    keys,
    parse_manifest,
    sync_dataset,
    upload_dataset,
)


def make_dataset(folder, n_shards=3, tokens=5000):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards = []
    for i in range(n_shards):
        arr = rng.integers(0, 50_000, tokens, dtype=np.uint16)
        name = f"shard_{i:05d}.bin"
        (folder / name).write_bytes(arr.tobytes())
        shards.append(
            {
                "name": name,
                "tokens": tokens,
                "bytes": arr.nbytes,
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            }
        )
    manifest = {
        "format": "template-shards/1",
        "dtype": "uint16",
        "vocab_size": 50257,
        "tokenizer": "gpt2",
        "total_tokens": tokens * n_shards,
        "shards": shards,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


async def test_upload_then_sync_and_repair(client, tmp_path, caplog):
    src = tmp_path / "src"
    manifest = make_dataset(src)
    prefix = keys.dataset_prefix("tiny")
    await upload_dataset(client, src, prefix)

    out = await sync_dataset(client, prefix, tmp_path / "cache")
    for s in manifest["shards"]:
        assert (out / s["name"]).read_bytes() == (src / s["name"]).read_bytes()
    assert json.loads((out / "manifest.json").read_text()) == manifest

    # damage the cache: flip a byte (same size), truncate another
    bad = bytearray((out / "shard_00000.bin").read_bytes())
    bad[10] ^= 0xFF
    (out / "shard_00000.bin").write_bytes(bytes(bad))
    (out / "shard_00001.bin").write_bytes(b"short")
    mtime = (out / "shard_00002.bin").stat().st_mtime_ns
    caplog.set_level(logging.INFO)
    assert await sync_dataset(client, prefix, tmp_path / "cache") == out
    for s in manifest["shards"]:
        assert (out / s["name"]).read_bytes() == (src / s["name"]).read_bytes()
    assert (out / "shard_00002.bin").stat().st_mtime_ns == mtime  # a valid file is kept
    assert "2 shards downloaded, 1 cached" in caplog.text


async def test_corrupted_remote_shard_is_refused(client, tmp_path):
    src = tmp_path / "src"
    make_dataset(src, n_shards=1)
    prefix = keys.dataset_prefix("bad")
    await upload_dataset(client, src, prefix)
    await client.put_bytes(keys.dataset_shard_key(prefix, "shard_00000.bin"), b"\0" * 10_000)
    with pytest.raises(ChecksumMismatch):
        await sync_dataset(client, prefix, tmp_path / "cache")
    assert not (tmp_path / "cache" / prefix / "shard_00000.bin").exists()


async def test_upload_refuses_a_folder_that_differs_from_its_manifest(client, tmp_path):
    make_dataset(tmp_path / "src", n_shards=1)
    (tmp_path / "src" / "shard_00000.bin").write_bytes(b"\1" * 10_000)
    with pytest.raises(InvalidManifest, match="differs"):
        await upload_dataset(client, tmp_path / "src", keys.dataset_prefix("x"))


def _manifest(**over):
    m = {
        "format": "template-shards/1",
        "dtype": "uint16",
        "vocab_size": 100,
        "tokenizer": "t",
        "total_tokens": 4,
        "shards": [{"name": "shard_00000.bin", "tokens": 4, "bytes": 8, "sha256": "0" * 64}],
    }
    m.update(over)
    return json.dumps(m)


def _shard(**over):
    s = {"name": "a.bin", "tokens": 4, "bytes": 8, "sha256": "0" * 64}
    s.update(over)
    return [s]


def test_manifest_parses():
    m = parse_manifest(_manifest())
    assert m.dtype == "uint16" and m.shards[0].name == "shard_00000.bin"
    assert parse_manifest(m.to_json()) == m


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        _manifest(format="other/1"),
        _manifest(dtype="float32"),
        _manifest(vocab_size=70_000),
        _manifest(vocab_size=True),
        _manifest(total_tokens=5),
        _manifest(shards=[]),
        _manifest(shards=_shard(name="../x")),
        _manifest(shards=_shard(name="a/b.bin")),
        _manifest(shards=_shard(name="manifest.json")),
        _manifest(shards=_shard(bytes=9)),
        _manifest(shards=_shard(tokens=-1)),
        _manifest(shards=_shard(sha256="xyz")),
        _manifest(shards=_shard() * 2, total_tokens=8),
    ],
)
def test_bad_manifests_rejected(text):
    with pytest.raises(InvalidManifest):
        parse_manifest(text)
