"""Windows whose uploads were trained without the previous aggregate, through no fault of theirs.

Miners start window w's H steps once window w - 1's aggregate is applied, or at the leader's
publish deadline for it without it. When that aggregate reaches them later (the leader was
slow, restarted, or could not publish and they fell back to the bootstrap rule at
end(w)), window w's deltas were trained on a model one aggregate behind the one the validator
measures them on, and an honest delta can raise the control loss there. The fault is the
leader's (or the network's), not the miner's, so in such a window a measured harm is not
held against the upload: it becomes ``not_evaluated`` (score unchanged, never a peer), and
the log says why. Everything else (credit, the training evidence, every model-free check)
stands. ``ValidatorSync.landed`` records when each aggregate reached the followers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from template.protocol.windows import WindowClock

from .judge import Decision
from .outcomes import RejectCode

logger = logging.getLogger(__name__)


def late_previous_aggregate(
    landed: Mapping[int, int], window: int, clock: WindowClock
) -> int | None:
    """The block at which window ``window - 1``'s aggregate reached the followers when that
    was after its publish deadline (miners trained ``window`` without it); None when it was on
    time or is unknown (e.g. applied before a restart)."""
    block = landed.get(window - 1)
    if block is None or block <= clock.publish_deadline(window - 1):
        return None
    return block


def excuse_stale_harm(
    window: int, decisions: Mapping[int, Decision], landed: Mapping[int, int], clock: WindowClock
) -> dict[int, Decision]:
    """``decisions`` with every measured harm (a negative gain beyond noise) turned into
    ``not_evaluated`` when window ``window - 1``'s aggregate reached the miners late."""
    out = dict(decisions)
    landed_block = late_previous_aggregate(landed, window, clock)
    if landed_block is None:
        return out
    for uid, d in decisions.items():
        r = d.rejection
        if r is None or r.code is not RejectCode.HARMFUL or not d.gain_z < 0:
            continue
        out[uid] = replace(d, verdict="not_evaluated", rejection=None)
        logger.info(
            "window %d: uid %d: harm not held against it (%s): trained before window %d's "
            "aggregate reached the miners (block %d)",
            window,
            uid,
            r.detail,
            window - 1,
            landed_block,
        )
    return out
