"""The leader's last look before it publishes: does the window's outer step lower the loss?

Each upload is measured alone, at its weight in the outer step (``lr / n``, measure.py), but
the network applies the *sum* of the peers' deltas. Honest deltas of one window share much
of their direction, so along it the sum moves the model up to ``n`` times as far as any one
of them did when measured, and when each alone is already near the best step there, the sum
overshoots: measured on a local subnet's window 10, three credited uploads that each lowered
the control loss by 0.06-0.07 raised it by 0.24 together (docs/scoring_record.md, "The
window's step, measured whole"). A peer list with fewer peers than the measured crowd (one
upload rejected) scales each peer up the same way.

So the leader measures the step it is about to publish, on ``--eval.control-seqs`` of the
window's control pool (whose losses before are already known; a third of the pool by default,
so the check costs about a fifth of one upload's measurement): the peers' deltas combined as
``apply_uploads`` combines them (``aggregation.outer_step_weights``). When it raises the
control loss by more than ``harm_z`` standard errors (clustered by page), or its loss is not
finite, the leader publishes an empty list instead: no step this window, the model as it was.
Nothing else changes: the uploads' verdicts and pay are the judge's, made before (an honest
upload is not at fault for the sum's size). The check never costs a measurement: without the
time for both, the leader publishes its list unchecked (plan.py, loop.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from template.hparams import HParams
from template.protocol.aggregation import outer_step_weights
from template.protocol.documents import PeerList
from template.training.wire import Upload

from .measure import Measurer, clustered_var_of_mean, sum_delta, t_to_z

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepCheck:
    """The leader's measurement of one window's outer step on its control pool."""

    window: int
    peers: tuple[int, ...]
    gain: float  # mean control-loss drop in nats per token (negative: the step raises it)
    z: float  # gain in standard errors, clustered by page
    sequences: int
    harmful: bool

    def record(self) -> dict:
        """For the status file and history."""
        return {
            "peers": list(self.peers),
            "gain": round(self.gain, 5),
            "z": round(self.z, 2),
            "sequences": self.sequences,
            "checked": True,
            "applied": not self.harmful,
        }


def unchecked_record(peers: Sequence[int]) -> dict:
    """The status's record of a step published unchecked (no time for the check)."""
    return {"peers": list(peers), "checked": False, "applied": True}


def check_outer_step(
    measurer: Measurer,
    window: int,
    peers: Sequence[Upload],
    hp: HParams,
    shapes: Mapping[str, tuple[int, ...]],
    harm_z: float,
) -> StepCheck | None:
    """Measure the outer step of ``peers`` (in list order) on ``window``'s control sample.

    None when there is nothing to check: no peers, or the measurer holds no control pool of
    this window (nothing was measured, so no peer can have been chosen by measurement)."""
    if not peers or measurer.window != window:
        return None
    delta = sum_delta(peers, shapes, outer_step_weights(peers, hp))
    gains, pages = measurer.step_gain(delta, hp.outer.lr)
    mean = float(gains.mean())
    var, df = clustered_var_of_mean(gains, pages)
    z = t_to_z(mean / math.sqrt(var), df) if 0 < var < math.inf else 0.0
    broken = not math.isfinite(mean)  # a step that breaks the model is never applied
    check = StepCheck(
        window, tuple(u.uid for u in peers), mean, z, gains.numel(), broken or z < -harm_z
    )
    if check.harmful:
        logger.warning(
            "window %d: the outer step of peers %s raises the control loss by %.4g (%+.1f "
            "standard errors, limit -%s): publishing no step this window",
            window,
            list(check.peers),
            -mean,
            z,
            harm_z,
        )
    else:
        logger.info(
            "window %d: the outer step of peers %s lowers the control loss by %+.4g (%+.1f "
            "standard errors)",
            window,
            list(check.peers),
            mean,
            z,
        )
    return check


def vetted_list(doc: PeerList, check: StepCheck | None) -> PeerList:
    """``doc``, or the same list with no peers (no step) when ``check`` found its step
    harmful."""
    if check is None or not check.harmful:
        return doc
    return replace(doc, peers=(), reserves=())
