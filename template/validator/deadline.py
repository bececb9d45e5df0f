"""How long a leader may measure uploads: the seconds left before its peer list is due.

A leader's list after the publish deadline makes the miners train the next window from the
model one aggregate behind. A list it cannot publish before ``LATE_MARGIN_BLOCKS`` ahead of
the next window's end is never published: every node then applies the bootstrap rule (the
lowest uids that pass the model-free checks, harmful uploads included: docs/scoring.md,
"A slow leader"). So a leader measures only what fits before the first of these deadlines it
can still meet; the fair rotation (sampling.py) measures the rest in later windows, and
boosted measurements come last. A follower's lateness changes no model: it is not limited.

Block numbers, not this machine's clock, say how far the deadline is (a skewed clock moves
nothing); the chain's timestamps give the seconds per block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from template.protocol.windows import WindowClock

from .sync import LATE_MARGIN_BLOCKS


@dataclass(frozen=True)
class TimeLeft:
    """A leader's seconds of work left as its measurements begin (None: no limit)."""

    plan: float | None = None  # before the first deadline it can still meet: what to plan for
    stop: float | None = None  # before it cannot publish at all: no measurement starts later


def time_left(clock: WindowClock, window: int, block: int, block_seconds: float | None) -> TimeLeft:
    """The leader's ``TimeLeft`` for its list of ``window`` at ``block``."""
    on_time, at_all = leader_deadlines(clock, window)
    return TimeLeft(
        seconds_before(block, (on_time, at_all), block_seconds),
        seconds_before(block, (at_all,), block_seconds),
    )


def leader_deadlines(clock: WindowClock, window: int) -> tuple[int, int]:
    """The blocks before which the leader's list of ``window`` must be out: on time for the
    miners' next window, and at all (past it the leader follows the bootstrap rule)."""
    return clock.publish_deadline(window), clock.end(window + 1) - LATE_MARGIN_BLOCKS


def seconds_per_block(first: int, first_ts: float, last: int, last_ts: float) -> float | None:
    """The chain's mean block time between blocks ``first`` and ``last`` (None when their
    timestamps say nothing: the same block, or a clock that did not move)."""
    if last <= first or last_ts <= first_ts:
        return None
    return (last_ts - first_ts) / (last - first)


def seconds_before(
    block: int, deadlines: Sequence[int], block_seconds: float | None
) -> float | None:
    """Seconds of work left at ``block`` before the first of ``deadlines`` (ascending) that
    leaves any; None when none does or the block time is unknown (no limit: nothing to save).

    The current block counts as spent: how far into it we are is unknown, and the rest of it
    pays for the work between the measurements and the list (judge, scores, publishing)."""
    if block_seconds is None or block_seconds <= 0:
        return None
    for due in deadlines:
        left = (due - block - 1) * block_seconds
        if left > 0:
            return left
    return None


def time_budget_within(configured: float, seconds_left: float | None) -> float:
    """The evaluation time budget (``--eval.time-budget``, 0: none) cut to ``seconds_left``
    (None: no deadline to meet)."""
    if seconds_left is None:
        return configured
    seconds_left = max(seconds_left, 1e-9)  # none left: the max wait's minimum only (not 0)
    return seconds_left if configured <= 0 else min(configured, seconds_left)


def measurements_stop(
    started: float, left: TimeLeft, seconds_per_eval: float | None, overhead: float | None
) -> float | None:
    """The ``time.monotonic()`` after which no measurement starts (None: no limit), for
    measurements begun at ``started``. Usually the last moment (``left.stop``): the plan
    already counted what fits on time. A validator that has never timed a measurement
    (``seconds_per_eval`` None: a new one's first window) cannot count, its plan takes every
    upload, so it stops at the on-time deadline instead, less the window's other work: a late
    list costs the miners a window, fewer measurements cost no uid more than a turn."""
    if seconds_per_eval is None and left.plan is not None:
        return started + max(0.0, left.plan - (overhead or 0.0))
    return None if left.stop is None else started + left.stop
