"""Start-up steps both neurons share, each failing with a ``StartupError`` that names the fix.

Device, storage config, dataset (a local folder, or the dataset bucket mirrored under the
state dir; the bucket file is read by ``storage.load_read_bucket``), chain connection, registration, the bucket
commitment (published only when it changed, ``RateLimitedError`` retried), a progress line
for catch-up, and closing what was opened. Role-specific steps (the miner's bucket probe,
the validator's permit) stay in ``template/{miner,validator}/startup.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import torch

from template.chain.config import connect_chain, resolve_chain_config
from template.chain.errors import ChainError, RateLimitedError
from template.chain.protocol import Chain
from template.hparams import HParams
from template.storage import (
    BucketConfig,
    ConfigError,
    NodeStorageConfig,
    StorageClient,
    StorageError,
    encode_commitment,
    load_read_bucket,
    load_storage_config,
    sync_dataset,
)
from template.training.pages import PageDataset
from template.training.shards import DatasetError, TokenStream

from .errors import StartupError

logger = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5  # tries of a rate-limited commitment (1 s, 2 s, ... apart)


def check_device(device: str) -> str:
    """The torch device string, or StartupError when CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise StartupError(
            f"--device {device!r} is not a torch device ({e}); use cpu or cuda"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise StartupError(
                f"--device {device} asked for CUDA but torch sees no CUDA device. Check "
                "nvidia-smi and that torch is a CUDA build, or run with --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise StartupError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif dev.type != "cpu":
        raise StartupError(f"--device {device}: only cpu and cuda[:N] are supported")
    return str(dev)


def load_storage(path: str | None, allow_private: bool) -> tuple[NodeStorageConfig, BucketConfig]:
    """This node's bucket config and the READ config it publishes."""
    try:
        cfg = load_storage_config(path)
    except ConfigError as e:
        raise StartupError(f"storage: {e}. See docs/storage.md (--storage.config)") from None
    return cfg, published_bucket(cfg, allow_private)


def published_bucket(cfg: NodeStorageConfig, allow_private: bool) -> BucketConfig:
    """The READ config a node commits on chain (the write keys only on local subnets)."""
    if cfg.read is not None:
        return cfg.read
    if not allow_private:
        raise StartupError(
            "storage: no read-only keys to publish. Create a read-only API token for the "
            "bucket and set TEMPLATE_S3_READ_ACCESS_KEY_ID / TEMPLATE_S3_READ_SECRET_ACCESS_KEY"
        )
    logger.warning("storage: no read keys; publishing the write keys (local subnets only)")
    return cfg.write


async def open_dataset(args: argparse.Namespace, hp: HParams, state: Path) -> PageDataset:
    """The local dataset folder, or the dataset bucket mirrored under ``state/dataset``."""
    folder: Path
    if args.dataset_path:
        folder = Path(args.dataset_path).expanduser()
    elif args.dataset_bucket_config:
        try:
            cfg = load_read_bucket(args.dataset_bucket_config)  # read keys only
        except ConfigError as e:
            raise StartupError(
                f"--dataset.bucket-config: {e}. It needs bucket (and endpoint_url, region, "
                "access_key_id, secret_access_key for a private bucket)"
            ) from None
        async with StorageClient(cfg) as client:
            try:
                folder = await sync_dataset(client, args.dataset_prefix, state / "dataset")
            except StorageError as e:
                raise StartupError(f"dataset bucket: {e}. Check --dataset.bucket-config") from None
    else:
        raise StartupError(
            "no dataset: pass --dataset.path (a folder from seed-prepare-dataset) or "
            "--dataset.bucket-config"
        )
    try:
        return PageDataset(TokenStream(folder), hp)
    except DatasetError as e:
        raise StartupError(f"dataset: {e}") from None


async def connect(args: argparse.Namespace, hotkey) -> Chain:
    """The chain client of ``--subtensor.*`` signing with ``hotkey``."""
    try:
        cfg = resolve_chain_config(args)
        return await connect_chain(cfg, hotkey)
    except ChainError as e:
        raise StartupError(
            f"chain: {e}. Check --subtensor.network / --subtensor.chain_endpoint and that the "
            "node is running"
        ) from None


async def check_registered(
    chain: Chain, hotkey: str, wallet_name: str = "default", wallet_hotkey: str = "default"
) -> int:
    """The hotkey's uid (StartupError naming the btcli command if it has none)."""
    uid = await chain.uid_of(hotkey)
    if uid is None:
        raise StartupError(
            f"hotkey {hotkey} is not registered on netuid {chain.netuid}. Register it with "
            f"'btcli subnets register --netuid {chain.netuid} -w {wallet_name} "
            f"-H {wallet_hotkey}' (dev chain: python -m template.chain.devchain register "
            f"-w {wallet_name} -H {wallet_hotkey} --netuid {chain.netuid}), then start again"
        )
    return uid


async def publish_commitment(
    chain: Chain, read: BucketConfig, attempts: int = COMMIT_ATTEMPTS
) -> bool:
    """Commit the read config when the chain holds something else (rate limits retried)."""
    try:
        data = encode_commitment(read)
    except StorageError as e:
        raise StartupError(f"storage: cannot publish this bucket: {e}") from None
    if (await chain.commitments()).get(chain.hotkey) == data:
        return False
    for i in range(attempts):
        try:
            await chain.commit(data)
            logger.info("published the bucket commitment for %s (%d bytes)", read.bucket, len(data))
            return True
        except RateLimitedError:
            await asyncio.sleep(1.0 + i)
    raise StartupError("chain: commitment rate-limited repeatedly; start again in a minute")


class Progress:
    """A one-line progress display on stderr (tqdm when installed)."""

    def __init__(self, what: str):
        self.what, self.bar, self._last = what, None, 0.0

    def __call__(self, done: int, total: int) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.what, unit="window", file=sys.stderr)
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
            return
        now = time.monotonic()
        if done >= total or now - self._last > 0.5:
            self._last = now
            end = "\n" if done >= total else ""
            print(f"\r{self.what}: {done}/{total}", end=end, file=sys.stderr, flush=True)


async def close_all(closers: list) -> None:
    """Close (await when needed) in reverse order; errors are logged, never raised."""
    for c in reversed(closers):
        try:
            res = c.close()
            if asyncio.iscoroutine(res):
                await res
        except Exception as e:  # noqa: BLE001
            logger.debug("close: %s", e)
