"""One window's outer step from peers' upload bytes: the same code live and on replay.

Live, a node gathers the peer list's uploads from the miners' buckets; on catch-up it
reads the same bytes from the leader's aggregate bundle. Either way the blobs go through
``decode_peer_uploads`` then ``apply_uploads``, so both paths give identical weights.

Each peer counts by its share of a window's work (``upload_work``: the pages it claims over
``pages_per_window``), as FedAvg weighs clients by their samples: a peer that trained on a
quarter of the pages moves the model a quarter as much as one that trained on all of them,
instead of diluting the full peers' mean. A claim can only lower a peer's weight below the
plain mean's, never raise it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

import torch

from template.hparams import HParams, hparams_hash
from template.training.envelope import WireError
from template.training.outer import clip_scales, peer_factors, sparse_norm, sparse_outer_step
from template.training.wire import Upload, decode_upload, upload_size_cap

logger = logging.getLogger(__name__)


def decode_peer_uploads(
    blobs: Sequence[bytes | None],
    peers: Sequence[tuple[int, str]],
    window: int,
    hp: HParams,
    param_shapes: Mapping[str, tuple[int, ...]],
) -> list[Upload]:
    """Strictly decode each peer's blob; a missing or invalid one is skipped (and logged)."""
    cap = upload_size_cap(param_shapes, hp.compression)
    run = hparams_hash(hp)
    out: list[Upload] = []
    for (uid, hotkey), blob in zip(peers, blobs, strict=True):
        if blob is None:
            logger.info("window %d: no upload from uid %d, skipped", window, uid)
            continue
        try:
            out.append(
                decode_upload(
                    blob,
                    max_bytes=cap,
                    expected={"window": window, "uid": uid, "hotkey": hotkey, "hparams_hash": run},
                    param_shapes=param_shapes,
                    config=hp.compression,
                )
            )
        except WireError as e:
            logger.warning("window %d: upload of uid %d rejected (%s), skipped", window, uid, e)
    return out


def upload_work(upload: Upload, hp: HParams) -> float:
    """The share of a window's work an upload claims: its pages over ``pages_per_window``,
    at most 1 (the validator caps pay by it, and the outer step weighs peers by it)."""
    return min(1.0, len(upload.pages) / max(1, hp.pages_per_window))


def clip_factors(
    uploads: Mapping[int, Upload], hp: HParams, peers: Collection[int] = ()
) -> dict[int, float]:
    """uid -> the factor the outer step's clip would give each upload (at most 1: a delta
    above the peers' median norm is scaled down to it). ``peers``: the uids whose norms set the
    median, as the outer step takes it over its peers only (the validator passes the last
    window's; those among ``uploads``, or all of them when none is). The validator measures an
    upload at this size, so values inflated past the median earn nothing they do not add."""
    uids = list(uploads)
    norms = [sparse_norm(uploads[u].delta.sparse()) for u in uids]
    basis = set(peers)
    ref = [n for u, n in zip(uids, norms, strict=True) if u in basis]
    return dict(zip(uids, clip_scales(norms, hp.outer.clip_to_median, ref), strict=True))


def apply_uploads(model: torch.nn.Module, uploads: Sequence[Upload], hp: HParams) -> int:
    """Apply the outer step for these uploads (in the given order, each weighted by its
    ``upload_work``); returns how many applied."""
    if not uploads:
        return 0
    device = next(model.parameters()).device
    sparse_outer_step(
        model,
        [u.delta.to(device).sparse() for u in uploads],
        lr=hp.outer.lr,
        clip_to_median=hp.outer.clip_to_median,
        work=[upload_work(u, hp) for u in uploads],
    )
    return len(uploads)


def outer_step_weights(uploads: Sequence[Upload], hp: HParams) -> dict[int, float]:
    """uid -> the weight ``apply_uploads`` gives each upload's delta in its step, ``theta -=
    hp.outer.lr * sum(w * delta)``: its clip times its work share, over the total work (the
    outer step's own ``peer_factors``). The leader measures that step before it publishes a
    list (validator/step_check.py)."""
    factors, total = peer_factors(
        [u.delta.sparse() for u in uploads],
        [upload_work(u, hp) for u in uploads],
        hp.outer.clip_to_median,
    )
    return {u.uid: f / total for u, f in zip(uploads, factors, strict=True)}
