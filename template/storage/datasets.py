"""Token-shard datasets in a bucket: a strict manifest, a verified local cache, and upload.

A dataset is a folder holding ``manifest.json`` and its shards (written by
scripts/prepare_dataset.py):

    {"format": "template-shards/1", "dtype": "uint16" | "uint32", "vocab_size": int,
     "tokenizer": str, "total_tokens": int,
     "shards": [{"name": "shard_00000.bin", "tokens": int, "bytes": int, "sha256": hex}, ...]}
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from template.fileio import file_sha256
from template.training.shards import DatasetError, ShardInfo
from template.training.shards import Manifest as DatasetManifest
from template.training.shards import parse_manifest as _parse_manifest

from . import keys
from .client import MiB, StorageClient
from .errors import InvalidManifest

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 16 * MiB


def parse_manifest(data: bytes | str) -> DatasetManifest:
    """Validate a manifest strictly (the one parser in template.training.shards); InvalidManifest
    says what is wrong."""
    try:
        return _parse_manifest(data)
    except DatasetError as e:
        raise InvalidManifest(str(e)) from None


async def _cached_ok(path: Path, shard: ShardInfo, verify: bool) -> bool:
    try:
        if path.stat().st_size != shard.bytes:
            return False
    except FileNotFoundError:
        return False
    return not verify or await asyncio.to_thread(file_sha256, path) == shard.sha256


def local_dataset_dir(cache_dir: str | os.PathLike, prefix: str) -> Path:
    """Where ``sync_dataset`` keeps the dataset under ``prefix``."""
    folder = keys.dataset_manifest_key(prefix).removesuffix(keys.MANIFEST_NAME).strip("/")
    return Path(cache_dir) / folder


async def sync_dataset(
    client: StorageClient,
    prefix: str,
    cache_dir: str | os.PathLike,
    concurrency: int = 4,
    verify_cached: bool = True,
) -> Path:
    """Mirror the dataset under ``prefix`` into ``cache_dir``; returns the local folder.

    Cached shards with the right size (and sha256, when ``verify_cached``) are kept; missing or
    bad ones are downloaded again and checked against the manifest. ``manifest.json`` is
    written last, so a folder with a manifest is complete.
    """
    raw = await client.get_bytes(keys.dataset_manifest_key(prefix), MAX_MANIFEST_BYTES)
    manifest = parse_manifest(raw)
    out = local_dataset_dir(cache_dir, prefix)
    out.mkdir(parents=True, exist_ok=True)
    sem = asyncio.Semaphore(max(1, concurrency))

    async def fetch(shard: ShardInfo) -> bool:
        path = out / shard.name
        async with sem:
            if await _cached_ok(path, shard, verify_cached):
                return False
            if path.exists():
                logger.warning("cached shard %s is damaged; downloading it again", path)
            await client.download_file(
                keys.dataset_shard_key(prefix, shard.name), path, shard.bytes, shard.sha256
            )
            if path.stat().st_size != shard.bytes:
                path.unlink(missing_ok=True)
                raise InvalidManifest(f"shard {shard.name} is not {shard.bytes} bytes")
            return True

    fetched = await asyncio.gather(*(fetch(s) for s in manifest.shards))
    tmp = out / f".{keys.MANIFEST_NAME}.part"
    tmp.write_bytes(raw)
    os.replace(tmp, out / keys.MANIFEST_NAME)
    logger.info(
        "dataset %s: %d shards downloaded, %d cached",
        prefix,
        sum(fetched),
        len(fetched) - sum(fetched),
    )
    return out


async def upload_dataset(
    client: StorageClient, local_dir: str | os.PathLike, prefix: str
) -> DatasetManifest:
    """Upload a prepared dataset folder: every shard (checked first), then the manifest."""
    local_dir = Path(local_dir)
    raw = (local_dir / keys.MANIFEST_NAME).read_bytes()
    manifest = parse_manifest(raw)
    for shard in manifest.shards:
        path = local_dir / shard.name
        if not await _cached_ok(path, shard, verify=True):
            raise InvalidManifest(f"local shard {path} is missing or differs from the manifest")
    for shard in manifest.shards:
        await client.put_file(keys.dataset_shard_key(prefix, shard.name), local_dir / shard.name)
    await client.put_bytes(keys.dataset_manifest_key(prefix), raw, "application/json")
    logger.info("uploaded dataset %s (%d shards)", prefix, len(manifest.shards))
    return manifest
