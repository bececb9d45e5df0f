"""The validator's status (``node/status.ValidatorStatus``), rewritten after every window."""

from __future__ import annotations

import math
import time

from template.node.status import ValidatorStatus

from .evaluate import measured_heldout_loss


def validator_status(v, report, block: int) -> ValidatorStatus:
    """Validator ``v``'s status after ``report``'s window."""
    heldout = measured_heldout_loss(v.measurer.losses, v.dataset, v.cfg.eval_status_pages)
    wall = time.time() - v.started_at
    return ValidatorStatus(
        role="validator",
        hotkey=v.hotkey,
        uid=v.uid,
        window=report.window,
        block=block,
        in_sync=v.sync.applier.in_sync,
        fingerprint_ok=v.sync.applier.fingerprint_ok,
        applied_through=v.state.applied_through,
        peers_applied=v.sync.applier.peers_applied,
        heldout_loss=heldout if math.isfinite(heldout) else None,
        train_seconds_total=0.0,
        wall_seconds_total=wall,
        utilization=0.0,
        is_leader=report.is_leader,
        leader=report.leader,
        uploads_seen=report.seen,
        uploads_valid=report.valid,
        scores={str(u): s for u, s in sorted(v.scores.scores.items())},
        weights={str(u): w for u, w in sorted(v.state.weights.items())},
        weights_set=v.state.weights_set,
        last_weights_block=v.state.last_weights_block,
        weights_landed=None if v.weights_check is None else v.weights_check.landed,
        weights_check=None if v.weights_check is None else v.weights_check.message,
        eval_seconds_per_upload=v.state.eval_seconds,
        rejected={str(u): str(r) for u, r in sorted(report.rejected.items())},
        decisions={str(u): str(d) for u, d in sorted(report.decisions.items())},
    )
