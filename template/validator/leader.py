"""Publishing duties: every validator's peer list (heartbeat) and verdicts, the leader's
aggregate, fingerprint and checkpoints (formats: template/protocol/documents.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch

from template.hparams import HParams, hparams_hash
from template.protocol.documents import (
    Aggregate,
    Checkpoint,
    Fingerprint,
    PeerList,
    Verdict,
    Verdicts,
    encode_aggregate,
    encode_checkpoint,
    encode_fingerprint,
    encode_latest,
    encode_peer_list,
    encode_verdicts,
)
from template.protocol.selection import top_peers
from template.protocol.windows import WindowClock
from template.storage import StorageClient, StorageError, keys
from template.training.offload import in_worker

from .judge import Decision, JudgeRules, helpful_uploads
from .outcomes import Rejection

logger = logging.getLogger(__name__)


def choose_peers(
    window: int,
    scores: Mapping[int, float],
    decisions: Mapping[int, Decision],
    hotkeys: Mapping[int, str],
    hp: HParams,
    rules: JudgeRules,
) -> PeerList:
    """This validator's peer list for ``window`` from the judge's ``decisions`` on the standing
    uploads (``hotkeys``: uid -> hotkey of each).

    Top-G by score of the uploads the judge credited (proven training, not a copy or a mix,
    not harmful: judge.py) that lower the control loss (``Decision.earns``), plus reserves.
    While there is none (a young subnet): the ``helpful`` uploads (``judge.helpful_uploads``),
    best first (they lower the control loss beyond noise, their training evidence reaches
    ``JudgeRules.lean_z`` and none is a near-duplicate), so the model and the miners' error
    feedback keep moving; never the bootstrap rule, which would pick random or ALIE-shifted
    deltas."""
    g, r = hp.window.peers_per_window, hp.window.reserve_peers
    earning = {u: hotkeys[u] for u, d in decisions.items() if d.earns and u in hotkeys}
    chosen, spare = top_peers(scores, earning, g, r)
    if not chosen:
        helpful = [
            (d.uid, hotkeys[d.uid]) for d in helpful_uploads(decisions, rules) if d.uid in hotkeys
        ]
        chosen, spare = helpful[:g], helpful[g : g + r]
    return PeerList(window, tuple(chosen), tuple(spare), "scores", hparams_hash(hp))


async def _put(client: StorageClient, key: str, blob: bytes) -> bool:
    try:
        await client.put_bytes(key, blob)
        return True
    except StorageError as e:
        logger.warning("could not publish %s: %s", key, e)
        return False


async def publish_peer_list(client: StorageClient, doc: PeerList, signer) -> bool:
    return await _put(client, keys.peers_key(doc.window), encode_peer_list(doc, signer))


def window_verdicts(
    window: int,
    hotkeys: Mapping[int, str],
    decisions: Mapping[int, Decision],
    rejected: Mapping[int, Rejection],
    values: Mapping[int, float],
    hp: HParams,
) -> Verdicts:
    """This validator's verdict on each uid of ``hotkeys`` (uid -> hotkey: every miner it
    looked for): the judge's decision, else the earlier stages' rejection (``missing`` when no
    upload was found), with the value the window added to its score."""
    out = []
    for uid, hotkey in sorted(hotkeys.items()):
        d, r = decisions.get(uid), rejected.get(uid)
        if d is not None:  # a rejecting decision says why itself
            why, kind = d.rejection, d.verdict
            figures = (d.gain, d.fit_z, d.evidence_z, d.pay if d.credited else 0.0)
        elif r is not None:
            why, kind, figures = r, "missing" if r.missing else "rejected", (0.0,) * 4
        else:
            continue
        reason = "" if why is None or why.missing else str(why)
        out.append(Verdict(uid, hotkey, kind, reason, *figures, values.get(uid, 0.0)))
    return Verdicts(window, tuple(out), hparams_hash(hp))


async def publish_verdicts(client: StorageClient, doc: Verdicts, signer) -> bool:
    return await _put(client, keys.verdicts_key(doc.window), encode_verdicts(doc, signer))


async def publish_leader_documents(
    client: StorageClient,
    signer,
    model: torch.nn.Module,
    hp: HParams,
    window: int,
    peers: Sequence[tuple[int, str]],
    blobs: Sequence[bytes],
    fingerprint: Sequence[float],
    *,
    force_checkpoint: bool = False,
) -> None:
    """Aggregate of ``window`` (the peers' signed blobs), ``fingerprint`` (of ``model``, which
    must already hold window's aggregate: the apply computed it) and, every checkpoint_every
    windows, a checkpoint with the latest pointer."""
    run = hparams_hash(hp)
    fp = tuple(fingerprint)
    # encoding and signing run in a worker thread (training/offload.py): a checkpoint is the
    # whole model, and the upload watcher polls on the event loop
    aggregate = Aggregate(window, tuple(peers), tuple(blobs), run)
    await _put(
        client, keys.aggregate_key(window), await in_worker(encode_aggregate, aggregate, signer)
    )
    await _put(
        client,
        keys.fingerprint_key(window),
        encode_fingerprint(Fingerprint(window, fp, run), signer),
    )
    if force_checkpoint or WindowClock(hp.window).is_checkpoint_window(window):

        def checkpoint() -> bytes:
            params = {n: p.detach().cpu() for n, p in model.named_parameters()}
            return encode_checkpoint(Checkpoint(window, fp, params, run), signer)

        key = keys.checkpoint_key(window)
        if await _put(client, key, await in_worker(checkpoint)):
            await _put(client, keys.latest_checkpoint_key(), encode_latest(window, key, signer))
            logger.info("published checkpoint of window %d", window)
