"""Token-shard datasets in a bucket: a strict manifest, a verified local cache, and upload.

A dataset is a folder holding ``manifest.json`` and its shards (written by
scripts/prepare_dataset.py):

    {"format": "template-shards/1", "dtype": "uint16" | "uint32", "vocab_size": int,
     "tokenizer": str, "total_tokens": int,
     "shards": [{"name": "shard_00000.bin", "tokens": int, "bytes": int, "sha256": hex}, ...]}
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from . import keys
from .client import MiB, StorageClient
from .errors import InvalidManifest

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "template-shards/1"
MAX_MANIFEST_BYTES = 16 * MiB
DTYPE_BYTES = {"uint16": 2, "uint32": 4}
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ShardInfo:
    name: str
    tokens: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class DatasetManifest:
    format: str
    dtype: str
    vocab_size: int
    tokenizer: str
    total_tokens: int
    shards: tuple[ShardInfo, ...]

    def to_json(self) -> bytes:
        d = asdict(self)
        d["shards"] = [asdict(s) for s in self.shards]
        return json.dumps(d, indent=1).encode()


def _int(d: dict, name: str, where: str, minimum: int = 0) -> int:
    v = d.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise InvalidManifest(f"{where}: '{name}' must be an integer >= {minimum}, got {v!r}")
    return v


def parse_manifest(data: bytes | str) -> DatasetManifest:
    """Validate a manifest strictly; InvalidManifest says what is wrong."""
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidManifest(f"manifest is not JSON ({e.__class__.__name__})") from None
    if not isinstance(d, dict):
        raise InvalidManifest("manifest must be a JSON object")
    if d.get("format") != MANIFEST_FORMAT:
        raise InvalidManifest(
            f"manifest format must be {MANIFEST_FORMAT!r}, got {d.get('format')!r}"
        )
    dtype = d.get("dtype")
    if dtype not in DTYPE_BYTES:
        raise InvalidManifest(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    vocab = _int(d, "vocab_size", "manifest", 1)
    if vocab > 2 ** (8 * DTYPE_BYTES[dtype]):
        raise InvalidManifest(f"vocab_size {vocab} does not fit {dtype}")
    tokenizer = d.get("tokenizer")
    if not isinstance(tokenizer, str) or not 0 < len(tokenizer) <= 512:
        raise InvalidManifest("tokenizer must be a non-empty string")
    total = _int(d, "total_tokens", "manifest")
    raw_shards = d.get("shards")
    if not isinstance(raw_shards, list) or not raw_shards:
        raise InvalidManifest("shards must be a non-empty list")
    shards, seen = [], set()
    for i, s in enumerate(raw_shards):
        where = f"shard {i}"
        if not isinstance(s, dict):
            raise InvalidManifest(f"{where} must be an object")
        name = s.get("name")
        try:
            keys.check_name(name, "shard name")
        except ValueError as e:
            raise InvalidManifest(f"{where}: {e}") from None
        if name in seen or name == keys.MANIFEST_NAME:
            raise InvalidManifest(f"{where}: name {name!r} is repeated or reserved")
        seen.add(name)
        tokens, size = _int(s, "tokens", where), _int(s, "bytes", where)
        if size != tokens * DTYPE_BYTES[dtype]:
            raise InvalidManifest(f"{where}: bytes {size} != tokens {tokens} x {dtype} size")
        sha = s.get("sha256")
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            raise InvalidManifest(f"{where}: sha256 must be 64 lowercase hex characters")
        shards.append(ShardInfo(name, tokens, size, sha))
    if sum(s.tokens for s in shards) != total:
        raise InvalidManifest(f"total_tokens {total} != the sum of the shards' tokens")
    return DatasetManifest(MANIFEST_FORMAT, dtype, vocab, tokenizer, total, tuple(shards))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


async def _cached_ok(path: Path, shard: ShardInfo, verify: bool) -> bool:
    try:
        if path.stat().st_size != shard.bytes:
            return False
    except FileNotFoundError:
        return False
    return not verify or await asyncio.to_thread(_file_sha256, path) == shard.sha256


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
