"""The local subnet hands neurons read keys only, in files no other user can read."""

from __future__ import annotations

import asyncio
import stat
import tomllib

from template.localnet.setup import (
    NodeSpec,
    dataset_toml,
    publish_dataset,
    write_storage_configs,
)
from template.storage.config import load_read_bucket
from template.storage.local_server import start_local_s3
from template.training.shards import write_shards


def test_dataset_file_has_no_write_table_and_loads_as_a_read_bucket(tmp_path):
    text = dataset_toml("http://127.0.0.1:9", "localnet-dataset")
    data = tomllib.loads(text)
    assert set(data) == {"dataset"} and "write" not in text
    path = tmp_path / "d.toml"
    path.write_text(text)
    cfg = load_read_bucket(path)
    assert cfg.bucket == "localnet-dataset" and cfg.endpoint_url == "http://127.0.0.1:9"
    assert cfg.access_key_id and cfg.secret_access_key


def test_published_dataset_file_and_storage_configs_are_0600(tmp_path):
    folder = tmp_path / "dataset"
    write_shards([[1, 2, 3, 0]], folder, vocab_size=257, tokenizer="byte")
    with start_local_s3() as s3:
        args = asyncio.run(publish_dataset(s3.endpoint_url, folder, tmp_path))
    path = tmp_path / "dataset-bucket.toml"
    assert args[1] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "write" not in path.read_text()
    node = NodeSpec("miner-0", "miner", "miner-0", bucket="b", state_dir=str(tmp_path / "n"))
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "storage.toml").write_text("old")
    (tmp_path / "n" / "storage.toml").chmod(0o644)  # an older run's file keeps no wider mode
    write_storage_configs("http://127.0.0.1:9", [node])
    assert stat.S_IMODE((tmp_path / "n" / "storage.toml").stat().st_mode) == 0o600
