"""Build a ``Validator`` from parsed flags; every operator mistake becomes a StartupError."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from template.chain.config import connect_chain
from template.chain.errors import ChainError
from template.node.args import state_dir
from template.node.errors import StartupError
from template.node.hparams import load_run_hparams
from template.node.keys import load_hotkey
from template.node.metrics import Metrics
from template.storage import (
    ConfigError,
    StorageClient,
    StorageError,
    load_read_bucket,
    load_storage_config,
    sync_dataset,
)
from template.training.pages import PageDataset
from template.training.shards import DatasetError, TokenStream

from .args import add_validator_args, config_from_args
from .loop import Validator

logger = logging.getLogger(__name__)


async def load_dataset(args: argparse.Namespace, hp, cache_dir) -> PageDataset:
    try:
        if args.dataset_path:
            folder = args.dataset_path
        elif args.dataset_bucket_config:
            bucket = load_read_bucket(args.dataset_bucket_config)  # read keys only
            async with StorageClient(bucket) as client:
                folder = await sync_dataset(client, args.dataset_prefix, cache_dir)
        else:
            raise StartupError(
                "no dataset: pass --dataset.path (a folder from scripts/prepare_dataset.py) or "
                "--dataset.bucket-config with --dataset.prefix"
            )
        return PageDataset(TokenStream(folder), hp)
    except (DatasetError, OSError, ConfigError, StorageError) as e:
        raise StartupError(f"dataset: {e}") from None


async def build_validator(args: argparse.Namespace) -> Validator:
    """Everything the validator needs, checked; call ``await v.start()`` next (it checks the
    registration, the permit and the commitment)."""
    hp = load_run_hparams(args.hparams)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        raise StartupError(str(e)) from None
    keys = load_hotkey(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    try:
        storage = load_storage_config(args.storage_config)
    except ConfigError as e:
        raise StartupError(f"storage: {e}") from None
    folder = state_dir(args, "validator")
    dataset = await load_dataset(args, hp, folder / "dataset")
    try:
        chain = await connect_chain(args, keys.hotkey)
    except ChainError as e:
        raise StartupError(f"chain: {e}") from None
    metrics = Metrics.start(args.metrics_port, role="validator") if args.metrics_port else None
    return Validator(
        chain=chain,
        hotkey=keys.hotkey,
        storage=storage,
        hp=hp,
        dataset=dataset,
        cfg=cfg,
        state_dir=folder,
        device=args.device,
        allow_private=args.allow_private,
        metrics=metrics,
    )


def build_parser() -> argparse.ArgumentParser:
    from template.node.args import add_node_args

    parser = argparse.ArgumentParser(description="Validator of the template subnet.")
    add_node_args(parser, "validator")
    add_validator_args(parser)
    return parser


async def run_validator(args: argparse.Namespace) -> None:
    """Build, check, then run until --max-windows (or forever)."""
    validator = await build_validator(args)
    try:
        try:
            await validator.start()
        except ChainError as e:
            raise StartupError(f"chain: {e}") from None
        await _run_until_signal(validator.run(args.max_windows))
    finally:
        await validator.close()
        await validator.chain.close()


async def _run_until_signal(work) -> None:
    """Run ``work``; SIGINT/SIGTERM cancel it cleanly (the last window's state is already saved
    atomically), so the process exits 0 instead of dying by the signal."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. not the main thread
            loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        logger.info("stopping: signal received")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
