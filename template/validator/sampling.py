"""Fair rotation: when not every upload can be evaluated, the longest-waiting go first.

Guarantee (tested): with ``budget`` evaluations per window and ``n`` uids that upload a
valid upload every window, every uid is evaluated at least once in any ``rotation_bound(n,
budget) = ceil(n / budget)`` consecutive windows. ``evaluation_budget(..., uploads=n,
max_wait=k)`` raises a time-limited budget to ``ceil(n / k)`` so that bound is at most k
windows whatever one evaluation costs (the time budget then yields to fairness); the
validator passes ``--eval.max-wait``.

Boosted measurements (more sequences for undecided uids, ``--eval.boost``) come out of the same
time budget: ``boosts_within`` keeps only the boosts the room left after the chosen uploads
pays for, so a window of many undecided uids does not overrun its budget by the boost factor.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence


def evaluation_budget(
    max_uploads: int,
    time_budget: float,
    seconds_per_eval: float | None,
    *,
    uploads: int = 0,
    max_wait: int = 0,
) -> int | None:
    """How many uploads fit this window (None: all). The tighter of ``max_uploads`` and the
    time budget wins, but never fewer than ``ceil(uploads / max_wait)`` when ``max_wait`` > 0."""
    limits = []
    if max_uploads > 0:
        limits.append(max_uploads)
    if time_budget > 0 and seconds_per_eval and seconds_per_eval > 0:
        limits.append(max(1, int(time_budget / seconds_per_eval)))
    budget = min(limits) if limits else None
    if budget is not None and max_wait > 0 and uploads > 0:
        budget = max(budget, math.ceil(uploads / max_wait))
    return budget


def seconds_average(prev: float | None, seconds: float, weight: float = 0.2) -> float:
    """A moving average of a cost in seconds (a measurement, the window's other work): the
    first figure as it is (none before it: not 0), then ``weight`` on each new one."""
    return seconds if prev is None else (1.0 - weight) * prev + weight * seconds


def boost_room(time_budget: float, seconds_per_eval: float | None, chosen: int) -> float | None:
    """Unboosted evaluations' worth of time left once ``chosen`` uploads are measured once
    (None: no time limit; negative when the chosen ones alone overrun, e.g. forced by the max
    wait)."""
    if time_budget <= 0 or not seconds_per_eval or seconds_per_eval <= 0:
        return None
    return time_budget / seconds_per_eval - chosen


def boosts_within(undecided: Sequence[int], room: float | None, boost: int) -> list[int]:
    """The first of ``undecided`` (in priority order) whose extra sequences fit ``room``: a
    boosted measurement costs at most ``boost`` unboosted ones, ``boost - 1`` more."""
    if boost <= 1:
        return []
    if room is None:
        return list(undecided)
    fits = max(0, math.floor(room / (boost - 1) + 1e-9))
    return list(undecided[:fits])


def rotation_bound(uids: int, budget: int | None) -> int:
    """Windows within which every one of ``uids`` steady uploaders is evaluated."""
    if budget is None or budget >= uids:
        return 1
    return math.ceil(uids / max(1, budget))


def longest_waiting_first(
    uids: Iterable[int], last_evaluated: Mapping[int, int], window: int
) -> list[int]:
    """``uids``, those evaluated longest ago first (never evaluated before all); ties broken by
    a per-window hash so no uid is always last."""

    def key(uid: int) -> tuple[int, bytes]:
        return last_evaluated.get(uid, -1), hashlib.sha256(f"{window}|{uid}".encode()).digest()

    return sorted(uids, key=key)


def choose_for_evaluation(
    uids: Sequence[int], last_evaluated: Mapping[int, int], budget: int | None, window: int
) -> list[int]:
    """The ``budget`` uids evaluated longest ago (``longest_waiting_first``), in uid order."""
    if budget is None or budget >= len(uids):
        return sorted(uids)
    return sorted(longest_waiting_first(uids, last_evaluated, window)[:budget])
