"""Start-up: every check that can fail before training, each failing with the fix named.

Order: run hyperparameters, device, wallet hotkey, storage config, dataset, chain connection,
registration (``chain.uid_of``), bucket write access, the bucket commitment (published only
when it changed), then the model: the local state when it is intact, otherwise the leader's
latest checkpoint plus the aggregates since, otherwise (fresh subnet) the deterministic initial
model, which is the global model of window 0.
"""

from __future__ import annotations

import argparse
import logging
import time
from functools import partial
from pathlib import Path

import torch

from template.chain.errors import ChainError
from template.hparams import HParams, hparams_hash
from template.node.args import state_dir as default_state_dir
from template.node.errors import StartupError
from template.node.hparams import load_run_hparams
from template.node.keys import load_hotkey
from template.node.metrics import Metrics
from template.node.startup import (
    Progress,
    check_device,
    check_registered,
    close_all,
    connect,
    load_storage,
    open_dataset,
    publish_commitment,
)
from template.protocol.catchup import catch_up
from template.protocol.directory import PeerDirectory
from template.protocol.fingerprint import model_fingerprint
from template.protocol.windows import WindowClock
from template.retry import RetryPolicy
from template.storage import (
    AccessDenied,
    BucketNotFound,
    StorageClient,
    StorageError,
    TransferConfig,
    keys,
)
from template.training.compression import Compressor
from template.training.model import build_model

from . import sent_records
from .clock import BlockClock
from .landing import absent_uploads
from .loop import Miner, MinerSettings
from .state import Position, StateError, load_optimizer_tensors, load_state
from .sync import Sync
from .trainer import Trainer

logger = logging.getLogger(__name__)

SENT_CHECK_S = 20.0  # how long start-up asks the bucket which recorded uploads landed
PROBE_TRANSFER = TransferConfig(
    connect_timeout=3.0, read_timeout=5.0, request_timeout=10.0, retry=RetryPolicy(attempts=2)
)


async def check_bucket(client: StorageClient, hotkey: str) -> None:
    """Write, read back and delete a small object: proves the write keys and the bucket work."""
    key = f"{keys.ROOT}/probe/{hotkey}"
    where = client.cfg.address
    try:
        await client.put_bytes(key, b"ok")
        if await client.get_bytes(key, 16) != b"ok":
            raise StartupError(f"bucket {where}: a probe object read back differently")
        await client.delete([key])
    except BucketNotFound:
        raise StartupError(
            f"bucket {where} does not exist. Create it (Cloudflare R2 dashboard, 'aws s3 mb', ...) "
            "or fix TEMPLATE_S3_BUCKET / --storage.config"
        ) from None
    except AccessDenied:
        raise StartupError(
            f"bucket {where} refused the write keys. Check TEMPLATE_S3_WRITE_ACCESS_KEY_ID / "
            "TEMPLATE_S3_WRITE_SECRET_ACCESS_KEY (a token with write access to this bucket)"
        ) from None
    except StorageError as e:
        raise StartupError(
            f"bucket {where} unreachable ({e}). Check the endpoint URL and the network"
        ) from None


# --- model and local state ------------------------------------------------------------------
def clear_entries(error: dict[str, torch.Tensor], indices: dict) -> None:
    """Zero the error feedback at a sent record's flat indices (``sent_records.settle``)."""
    for name, idx in indices.items():
        e = error.get(name)
        if e is not None and idx.size and int(idx.max()) < e.numel():
            e.view(-1)[torch.from_numpy(idx)] = 0.0


async def settle_sent(state, saved_window, numels, clear, bucket, hotkey) -> list[int]:
    """``sent_records.settle``, after asking ``bucket`` (when given) which of the recorded
    uploads never landed."""
    absent: set[int] = set()
    windows = sent_records.pending(state, saved_window)
    if bucket is not None and windows:
        give_up = time.monotonic() + SENT_CHECK_S
        absent = await absent_uploads(bucket, hotkey, windows, give_up=give_up)
    return sent_records.settle(state, saved_window, numels, clear, absent)


async def initial_model(
    hp: HParams,
    directory: PeerDirectory,
    hotkey: str,
    state: Path,
    current_window: int,
    device: str,
    bucket: StorageClient | None = None,
) -> tuple[torch.nn.Module, Position, dict, dict]:
    """(global model, position, optimizer tensors, error feedback), from local state or peers.

    Start-up step 3. A corrupted or foreign local state is logged and rebuilt from the leader's
    checkpoint; with no checkpoint published, the initial model is window 0's global model.
    ``bucket``: this miner's own, asked which recorded uploads landed (``settle_sent``).
    """
    run = hparams_hash(hp)
    model = build_model(hp.model, "cpu")
    target = current_window - 1
    try:
        snap = load_state(state, hparams_hash=run, hotkey=hotkey)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name not in snap.model or snap.model[name].shape != p.shape:
                    raise StateError(f"local state lacks {name} or has another shape")
                p.copy_(snap.model[name])
        position, opt, ef = snap.position, snap.optimizer, snap.error
        numels = {n: p.numel() for n, p in model.named_parameters()}
        await settle_sent(
            state, position.last_window, numels, partial(clear_entries, ef), bucket, hotkey
        )
        logger.info(
            "resumed local state: window %d, model through window %d",
            position.last_window,
            position.applied_through,
        )
        applied = await catch_up(
            model,
            directory,
            hp,
            applied_through=position.applied_through,
            target=target,
            progress=Progress("catch-up"),
        )
        position.applied_through = applied if applied is not None else position.applied_through
        return model, position, opt, ef
    except StateError as e:
        if (state / "miner_state.json").exists():
            logger.warning("local state unusable (%s); rebuilding from the leader's checkpoint", e)
    position = Position(hparams_hash=run, hotkey=hotkey, applied_through=-1)
    logger.info("downloading the latest checkpoint ...")
    applied = await catch_up(
        model, directory, hp, applied_through=None, target=target, progress=Progress("catch-up")
    )
    if applied is None:
        logger.info("no checkpoint published: starting from the initial model (window 0)")
        model = build_model(hp.model, "cpu")
        applied = await catch_up(
            model, directory, hp, applied_through=-1, target=target, progress=Progress("catch-up")
        )
    position.applied_through = -1 if applied is None else applied
    return model, position, {}, {}


# --- the whole build ----------------------------------------------------------------------------
async def build_miner(args: argparse.Namespace) -> tuple[Miner, list]:
    """Run every start-up step; returns the miner and the things to close after it ran."""
    hp = load_run_hparams(args.hparams)
    if args.max_steps > hp.train.inner_steps:
        raise StartupError(
            f"--miner.max-steps {args.max_steps} exceeds this run's train.inner_steps "
            f"({hp.train.inner_steps}), the protocol's steps per window; use at most that"
        )
    device = check_device(args.device)
    node_keys = load_hotkey(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    key = node_keys.hotkey
    hotkey = key.ss58_address
    state = default_state_dir(args, "miner")
    storage_cfg, read_cfg = load_storage(args.storage_config, args.allow_private)
    dataset = await open_dataset(args, hp, state)
    chain = await connect(args, key)
    closers: list = [chain]
    try:
        uid = await check_registered(chain, hotkey, args.wallet_name, args.wallet_hotkey)
        bucket = StorageClient(storage_cfg.write, PROBE_TRANSFER)
        closers.append(bucket)
        await check_bucket(bucket, hotkey)
        bucket = StorageClient(storage_cfg.write)
        closers.append(bucket)
        await publish_commitment(chain, read_cfg)
        directory = PeerDirectory(chain, allow_private=args.allow_private)
        closers.append(directory)
        await directory.refresh()
        clock = BlockClock(chain)
        await clock.start()
        windows = WindowClock(hp.window)
        model, position, opt, ef = await initial_model(
            hp, directory, hotkey, state, windows.window_of(clock.block), device, bucket
        )
    except ChainError as e:
        await close_all(closers)
        raise StartupError(
            f"chain: {e}. Check that the chain endpoint is up, then start again"
        ) from None
    except BaseException:
        await close_all(closers)
        raise
    model = model.to(device)
    trainer = Trainer(
        hp,
        model,
        dataset,
        uid,
        device=device,
        micro_batch_size=args.micro_batch_size or None,
        max_steps=args.max_steps,
    )
    trainer.applied_through = position.applied_through
    compressor = Compressor(hp.compression)
    try:
        if opt:
            load_optimizer_tensors(trainer.optimizer, dict(trainer.model.named_parameters()), opt)
        if ef:
            compressor.load_state_dict({n: t.to(device) for n, t in ef.items()})
    except (StateError, ValueError) as e:
        logger.warning("optimizer/error-feedback state unusable (%s); starting them fresh", e)
        trainer.optimizer.state.clear()
        compressor.error = {}
    sync = Sync(hp, directory, trainer, clock, progress=Progress("re-sync"))
    if position.applied_through >= 0:  # checked against the leader's like any applied window
        sync.own_fingerprints[position.applied_through] = model_fingerprint(trainer.global_model)
    metrics = Metrics.from_args(args, "miner", hotkey)
    closers.append(metrics)
    settings = MinerSettings(hp=hp, uid=uid, state_dir=state, max_windows=args.max_windows)
    miner = Miner(
        settings,
        chain=chain,
        key=key,
        bucket=bucket,
        trainer=trainer,
        clock=clock,
        sync=sync,
        position=position,
        compressor=compressor,
        metrics=metrics,
    )
    logger.info(
        "miner uid %d (%s) ready: model through window %d, device %s, state %s",
        uid,
        hotkey,
        position.applied_through,
        device,
        state,
    )
    return miner, closers
