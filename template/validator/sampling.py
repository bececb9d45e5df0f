"""Fair rotation: when not every upload can be evaluated, the longest-waiting go first."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def evaluation_budget(
    max_uploads: int, time_budget: float, seconds_per_eval: float | None
) -> int | None:
    """How many uploads fit this window (None: all). The tighter of the two limits wins."""
    limits = []
    if max_uploads > 0:
        limits.append(max_uploads)
    if time_budget > 0 and seconds_per_eval and seconds_per_eval > 0:
        limits.append(max(1, int(time_budget / seconds_per_eval)))
    return min(limits) if limits else None


def choose_for_evaluation(
    uids: Sequence[int], last_evaluated: Mapping[int, int], budget: int | None, window: int
) -> list[int]:
    """The ``budget`` uids evaluated longest ago (never evaluated first); ties broken by a
    per-window hash so no uid is always last. Every uid waits at most ceil(n / budget) windows."""
    if budget is None or budget >= len(uids):
        return sorted(uids)

    def key(uid: int) -> tuple[int, bytes]:
        return last_evaluated.get(uid, -1), hashlib.sha256(f"{window}|{uid}".encode()).digest()

    return sorted(sorted(uids, key=key)[:budget])
