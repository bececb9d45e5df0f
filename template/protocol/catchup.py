"""Reading the leaders' documents: current leader, peer lists, checkpoints, aggregates, catch-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

import torch

from template.hparams import HParams, hparams_hash
from template.storage import StorageError, keys
from template.training.envelope import WireError
from template.training.model import param_shapes
from template.training.offload import in_worker
from template.training.wire import upload_size_cap

from .aggregation import apply_uploads, decode_peer_uploads
from .directory import PeerDirectory, read_or_none
from .documents import (
    MAX_JSON_DOC_BYTES,
    Aggregate,
    Checkpoint,
    Fingerprint,
    PeerList,
    Verdicts,
    checkpoint_size_cap,
    decode_aggregate,
    decode_checkpoint,
    decode_fingerprint,
    decode_latest,
    decode_peer_list,
    decode_verdicts,
)
from .leader import select_leader

logger = logging.getLogger(__name__)


def aggregate_size_cap(hp: HParams, shapes) -> int:
    return (hp.window.peers_per_window + 1) * (upload_size_cap(shapes, hp.compression) + 4096)


async def _get(directory: PeerDirectory, hotkey: str, key: str, max_bytes: int) -> bytes | None:
    return await read_or_none(directory.client(hotkey), key, max_bytes)


async def _fetch_doc(directory: PeerDirectory, hotkey: str, key: str, what: str, decode):
    """Download a small signed document and decode it; None when missing or invalid."""
    blob = await _get(directory, hotkey, key, MAX_JSON_DOC_BYTES)
    if blob is None:
        return None
    try:
        return decode(blob)
    except WireError as e:
        logger.warning("%s of %s rejected: %s", what, hotkey[:8], e)
        return None


async def fetch_peer_list(
    directory: PeerDirectory, hotkey: str, window: int, hp: HParams
) -> PeerList | None:
    """``hotkey``'s signed peer list for ``window``, or None (missing or invalid)."""
    run = hparams_hash(hp)
    return await _fetch_doc(
        directory,
        hotkey,
        keys.peers_key(window),
        f"peer list for window {window}",
        lambda b: decode_peer_list(b, signer=hotkey, hparams_hash=run, window=window),
    )


async def fetch_verdicts(
    directory: PeerDirectory, hotkey: str, window: int, hp: HParams
) -> Verdicts | None:
    """Validator ``hotkey``'s signed verdicts on ``window``'s uploads, or None (missing or
    invalid)."""
    run = hparams_hash(hp)
    return await _fetch_doc(
        directory,
        hotkey,
        keys.verdicts_key(window),
        f"verdicts for window {window}",
        lambda b: decode_verdicts(b, signer=hotkey, hparams_hash=run, window=window),
    )


async def fetch_fingerprint(
    directory: PeerDirectory, hotkey: str, window: int, hp: HParams
) -> Fingerprint | None:
    """``hotkey``'s signed model fingerprint after ``window``, or None (missing or invalid)."""
    run = hparams_hash(hp)
    return await _fetch_doc(
        directory,
        hotkey,
        keys.fingerprint_key(window),
        f"fingerprint for window {window}",
        lambda b: decode_fingerprint(b, signer=hotkey, hparams_hash=run, window=window),
    )


async def published_windows(
    directory: PeerDirectory, candidates: Sequence[str], windows: Sequence[int]
) -> dict[str, set[int]]:
    """Which of ``windows`` each candidate has a peer list object for (HEAD requests)."""

    async def has(hotkey: str, w: int) -> bool:
        client = directory.client(hotkey)
        if client is None:
            return False
        try:
            return await client.exists(keys.peers_key(w))
        except StorageError:
            return False

    pairs = [(hk, w) for hk in candidates for w in windows]
    found = await asyncio.gather(*(has(hk, w) for hk, w in pairs))
    out: dict[str, set[int]] = {hk: set() for hk in candidates}
    for (hk, w), ok in zip(pairs, found, strict=True):
        if ok:
            out[hk].add(w)
    return out


async def current_leader(directory: PeerDirectory, window: int, hp: HParams) -> str | None:
    """The leader for ``window`` (see leader.py): needs a refreshed directory."""
    candidates = directory.validators()
    timeout = hp.window.leader_timeout_windows
    recent = list(range(max(0, window - timeout), window))
    published = await published_windows(directory, candidates, recent)
    return select_leader(candidates, published, window, timeout)


async def fetch_latest_checkpoint(
    directory: PeerDirectory, hp: HParams, model: torch.nn.Module, exclude: str | None = None
) -> Checkpoint | None:
    """The newest valid checkpoint any leader candidate but ``exclude`` published (ties: higher
    stake first)."""
    best: tuple[int, str, str] | None = None
    for hotkey in directory.validators():
        if hotkey == exclude:
            continue
        blob = await _get(directory, hotkey, keys.latest_checkpoint_key(), MAX_JSON_DOC_BYTES)
        if blob is None:
            continue
        try:
            window, key = decode_latest(blob, signer=hotkey)
        except WireError as e:
            logger.warning("latest-checkpoint pointer of %s rejected: %s", hotkey[:8], e)
            continue
        if best is None or window > best[0]:
            best = (window, hotkey, key)
    if best is None:
        return None
    window, hotkey, key = best
    shapes = param_shapes(model)
    blob = await _get(directory, hotkey, key, checkpoint_size_cap(shapes))
    if blob is None:
        return None
    try:
        ckpt = await in_worker(  # the whole model: off the event loop
            decode_checkpoint,
            blob,
            max_bytes=checkpoint_size_cap(shapes),
            param_shapes=shapes,
            signer=hotkey,
            hparams_hash=hparams_hash(hp),
        )
    except WireError as e:
        logger.warning("checkpoint %s of %s rejected: %s", key, hotkey[:8], e)
        return None
    if ckpt.window != window:
        logger.warning("checkpoint %s claims window %d, pointer said %d", key, ckpt.window, window)
        return None
    return ckpt


async def fetch_aggregate(
    directory: PeerDirectory, window: int, hp: HParams, shapes: Mapping[str, tuple[int, ...]]
) -> Aggregate | None:
    """The aggregate of ``window`` from the first leader candidate (by stake) that has one."""
    cap = aggregate_size_cap(hp, shapes)
    for hotkey in directory.validators():
        blob = await _get(directory, hotkey, keys.aggregate_key(window), cap)
        if blob is None:
            continue
        try:
            return await in_worker(
                decode_aggregate,
                blob,
                max_bytes=cap,
                signer=hotkey,
                hparams_hash=hparams_hash(hp),
                window=window,
            )
        except WireError as e:
            logger.warning("aggregate of %s for window %d rejected: %s", hotkey[:8], window, e)
    return None


def load_checkpoint(model: torch.nn.Module, ckpt: Checkpoint) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(ckpt.params[name].to(p.device, p.dtype))


def apply_aggregate(model: torch.nn.Module, agg: Aggregate, hp: HParams) -> int:
    uploads = decode_peer_uploads(
        list(agg.uploads), list(agg.peers), agg.window, hp, param_shapes(model)
    )
    return apply_uploads(model, uploads, hp)


async def catch_up(
    model: torch.nn.Module,
    directory: PeerDirectory,
    hp: HParams,
    *,
    applied_through: int | None,
    target: int,
    progress: Callable[[int, int], None] | None = None,
    exclude: str | None = None,
) -> int | None:
    """Bring ``model`` to "every aggregate through window ``target`` applied".

    ``applied_through`` is the last window already in the model (None: nothing trusted, start
    from the newest checkpoint not published by ``exclude``). Returns the last window applied (may stop short when an
    aggregate is not published yet), or None when there is nothing to start from.
    """
    if applied_through is None:
        ckpt = await fetch_latest_checkpoint(directory, hp, model, exclude)
        if ckpt is None:
            return None
        await in_worker(load_checkpoint, model, ckpt)
        applied_through = ckpt.window
        logger.info("loaded checkpoint of window %d from %s", ckpt.window, ckpt.signer[:8])
    total = max(0, target - applied_through)
    for i, w in enumerate(range(applied_through + 1, target + 1)):
        agg = await fetch_aggregate(directory, w, hp, param_shapes(model))
        if agg is None:
            logger.info("catch-up stopped: no aggregate for window %d yet", w)
            break
        await in_worker(apply_aggregate, model, agg, hp)
        applied_through = w
        if progress is not None:
            progress(i + 1, total)
    return applied_through
