"""Build a ``Validator`` from parsed flags; every operator mistake becomes a StartupError."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from template.chain.errors import ChainError
from template.chain.protocol import Chain
from template.hparams import HParams, hparams_hash
from template.node.args import state_dir
from template.node.errors import StartupError
from template.node.hparams import load_run_hparams
from template.node.keys import load_hotkey
from template.node.metrics import Metrics
from template.node.startup import (
    check_device,
    check_registered,
    close_all,
    connect,
    load_storage,
    open_dataset,
    publish_commitment,
    published_bucket,
)
from template.protocol.catchup import catch_up
from template.protocol.directory import PeerDirectory
from template.protocol.windows import WindowClock
from template.storage import NodeStorageConfig, StorageClient, StorageError
from template.training.model import build_model
from template.training.pages import PageDataset

from .args import (  # noqa: F401 - build_parser re-exported
    ValidatorConfig,
    build_parser,
    config_from_args,
)
from .loop import Validator
from .measure import Measurer
from .secret import load_or_create_secret
from .state import ValidatorState, load_state
from .status import write_ready_status

logger = logging.getLogger(__name__)


async def prepare_validator(
    *,
    chain: Chain,
    key,  # a bittensor Keypair: signs documents; the chain client signs with it too
    storage: NodeStorageConfig,
    hp: HParams,
    dataset: PageDataset,
    cfg: ValidatorConfig,
    state_dir: Path,
    device: str = "cpu",
    allow_private: bool = False,
    metrics=None,
    wallet: tuple[str, str] = ("default", "default"),
    make_measurer: Callable[..., Measurer] = Measurer,
) -> Validator:
    """The start-up steps on a connected chain, then the validator built from its parts.

    Registration, the bucket (created when missing), the commitment (rate limits retried),
    the validator permit, then the model: the local state when intact, otherwise the
    leader's latest checkpoint plus aggregates, otherwise (fresh subnet) the initial model.
    ``make_measurer``: called like ``Measurer`` (a multi-GPU node passes its sharded one).
    """
    try:
        secret = load_or_create_secret(state_dir)
    except OSError as e:
        raise StartupError(
            f"cannot keep the sampling secret in {state_dir} ({e}): give --state.dir a folder "
            "this user can write"
        ) from e
    hotkey = key.ss58_address
    uid = await check_registered(chain, hotkey, *wallet)
    bucket = StorageClient(storage.write)
    directory = PeerDirectory(chain, allow_private=allow_private)
    try:
        try:
            await bucket.create_bucket()
        except StorageError as e:
            logger.debug("create_bucket: %s (it probably exists)", e)
        await publish_commitment(chain, published_bucket(storage, allow_private))
        await check_permit(directory, uid, hotkey, chain.netuid)
        model = build_model(hp.model, device)
        run_hash = hparams_hash(hp)
        state = load_state(state_dir, model, run_hash) or ValidatorState(hparams_hash=run_hash)
        if state.applied_through is None:
            window = WindowClock(hp.window).window_of(await chain.block())
            got = await catch_up(model, directory, hp, applied_through=None, target=window - 1)
            if got is not None:
                state.applied_through = got
                logger.info("model caught up from the latest checkpoint to window %d", got)
    except BaseException:
        await close_all([directory, bucket])
        raise
    measurer = make_measurer(
        model,
        dataset,
        own=cfg.eval_own_seqs,
        control=cfg.eval_control_seqs,
        salt=secret,
        device=device,
        control_pool=cfg.eval_control_pool,
    )
    return Validator(
        chain=chain,
        key=key,
        uid=uid,
        hp=hp,
        dataset=dataset,
        cfg=cfg,
        state_dir=state_dir,
        state=state,
        model=model,
        directory=directory,
        bucket=bucket,
        measurer=measurer,
        secret=secret,
        device=device,
        metrics=metrics,
    )


async def check_permit(directory: PeerDirectory, uid: int, hotkey: str, netuid: int) -> None:
    """StartupError unless ``uid`` holds a validator permit; warn when not the leader."""
    metagraph = await directory.refresh()
    me = metagraph.by_uid(uid)
    if me is None or not me.validator_permit:
        raise StartupError(
            f"uid {uid} has no validator permit on subnet {netuid}: stake to this hotkey "
            f"('btcli stake add --netuid {netuid}') until it is among the top validators by "
            "stake; permits are recomputed every tempo, then start again"
        )
    candidates = directory.validators()
    if candidates and candidates[0] != hotkey:
        rank = candidates.index(hotkey) + 1 if hotkey in candidates else "?"
        logger.warning(
            "this validator is not the leader candidate (stake rank %s); it will follow %s",
            rank,
            candidates[0][:10],
        )


async def build_validator(
    args: argparse.Namespace, make_measurer: Callable[..., Measurer] = Measurer
) -> Validator:
    """Every start-up step from parsed flags; each operator mistake is a StartupError."""
    hp = load_run_hparams(args.hparams)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        raise StartupError(str(e)) from None
    device = check_device(args.device)
    key = load_hotkey(args.wallet_name, args.wallet_hotkey, args.wallet_path).hotkey
    storage, _ = load_storage(args.storage_config, args.allow_private)
    folder = state_dir(args, "validator")
    dataset = await open_dataset(args, hp, folder)
    chain = await connect(args, key)
    try:
        metrics = None
        if args.metrics_port:
            metrics = Metrics.from_args(args, "validator", key.ss58_address)
        return await prepare_validator(
            chain=chain,
            key=key,
            storage=storage,
            hp=hp,
            dataset=dataset,
            cfg=cfg,
            state_dir=folder,
            device=device,
            allow_private=args.allow_private,
            metrics=metrics,
            wallet=(args.wallet_name, args.wallet_hotkey),
            make_measurer=make_measurer,
        )
    except ChainError as e:
        await chain.close()
        raise StartupError(
            f"chain: {e}. Check that the chain endpoint is up, then start again"
        ) from None
    except BaseException:
        await chain.close()
        raise


async def run_validator(
    args: argparse.Namespace, make_measurer: Callable[..., Measurer] = Measurer
) -> None:
    """Build (every start-up check), then run until --max-windows (or forever)."""
    validator = await build_validator(args, make_measurer)
    try:
        try:
            await write_ready_status(validator)  # status.py: caught up, before the first window
        except Exception as e:  # noqa: BLE001 - the loop catches up and reports anyway
            logger.warning("start-up status not written (%s)", e)
        await _run_until_signal(validator.run(args.max_windows))
    finally:
        await validator.close()
        await validator.chain.close()


async def _run_until_signal(work) -> None:
    """Run ``work``; SIGINT/SIGTERM cancel it cleanly (the last window's state is already saved
    atomically), so the process exits 0 instead of dying by the signal. Once stopping, repeats
    are ignored: a supervisor signalling the process group reaches a node twice under the rank
    launcher (directly and forwarded), and the second must not kill the clean-up."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. not the main thread
            loop.add_signal_handler(sig, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        logger.info("stopping: signal received")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
                if stopping:
                    signal.signal(sig, signal.SIG_IGN)
