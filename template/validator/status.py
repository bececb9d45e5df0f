"""The validator's status (``node/status.ValidatorStatus``), rewritten after every window."""

from __future__ import annotations

import dataclasses
import math
import time

from template.node.status import ValidatorStatus, write_status

from .evaluate import measured_heldout_loss
from .step_check import unchecked_record


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
        outer_step=_outer_step(report),
    )


async def write_ready_status(v) -> None:
    """Once started, catch up and write a status before the first window's work (which takes a
    fresh process a while): a restarted validator says at once whether its model is the
    network's. It describes the last completed window with its per-window figures unknown
    (None), so no follower of the status mistakes it for a window report."""
    block = await v.chain.block()
    w = v.clock.window_of(block)
    target = w - 1 if block >= v.clock.upload_cutoff(w - 1) else w - 2  # as the loop will pick
    if target > v.state.window and target >= 1:
        await v.directory.refresh()
        await v.sync.advance_to(target - 1)  # what run_window(target) does first
    status = dataclasses.asdict(
        ValidatorStatus(
            role="validator",
            hotkey=v.hotkey,
            uid=v.uid,
            window=v.state.window,
            block=await v.chain.block(),
            in_sync=v.sync.applier.in_sync,
            fingerprint_ok=v.sync.applier.fingerprint_ok,
            applied_through=v.state.applied_through,
            peers_applied=v.sync.applier.peers_applied,
            heldout_loss=None,
            train_seconds_total=0.0,
            wall_seconds_total=time.time() - v.started_at,
            utilization=0.0,
            scores={str(u): s for u, s in sorted(v.scores.scores.items())},
            weights={str(u): x for u, x in sorted(v.state.weights.items())},
            weights_set=v.state.weights_set,
            last_weights_block=v.state.last_weights_block,
        )
    )
    for key in ("is_leader", "leader", "uploads_seen", "uploads_valid", "rejected", "decisions"):
        status[key] = None
    write_status(v.state_dir, status)


def _outer_step(report) -> dict | None:
    """The leader's step check (None on a follower, or when its list had no peers)."""
    if report.step is not None:
        return report.step.record()
    if not report.step_time and report.peers:
        return unchecked_record([u for u, _ in report.peers])
    return None
