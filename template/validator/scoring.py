"""Per-uid scores: an exponential moving average of each window's relative contribution.

A window's value for a uid is its held-out loss gain divided by the best gain of the window
(so values are in (0, 1] for valid uploads, comparable across the run as losses shrink),
``-invalid_penalty`` for an upload that failed a check and ``-missing_penalty`` for no upload.
Uploads not evaluated this window (rotation) keep their score unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from template.chain.types import Metagraph


class Scoreboard:
    def __init__(
        self,
        alpha: float,
        scores: Mapping[int, float] | None = None,
        hotkeys: Mapping[int, str] | None = None,
    ):
        self.alpha = alpha
        self.scores: dict[int, float] = {
            int(u): float(s) for u, s in (scores or {}).items() if math.isfinite(s)
        }
        self.hotkeys: dict[int, str] = {int(u): h for u, h in (hotkeys or {}).items()}

    def sync_hotkeys(self, metagraph: Metagraph) -> list[int]:
        """Reset uids whose hotkey was replaced (or that left); returns the uids reset."""
        current = {n.uid: n.hotkey for n in metagraph.neurons}
        reset = [u for u, h in self.hotkeys.items() if current.get(u) != h]
        for u in reset:
            self.scores.pop(u, None)
            self.hotkeys.pop(u, None)
        return reset

    def update(self, uid: int, hotkey: str, value: float) -> float:
        """Fold one window's value into the EMA. A non-finite value counts as -1 (never NaN)."""
        if not math.isfinite(value):
            value = -1.0
        value = max(-1.0, min(1.0, value))
        self.hotkeys[uid] = hotkey
        old = self.scores.get(uid)
        new = value if old is None else (1 - self.alpha) * old + self.alpha * value
        self.scores[uid] = new
        return new

    def has_scores(self) -> bool:
        return any(s > 0 for s in self.scores.values())


def window_values(
    gains: Mapping[int, float],
    invalid: Mapping[int, str],
    missing: list[int],
    *,
    invalid_penalty: float,
    missing_penalty: float,
) -> dict[int, float]:
    """The value each uid earned this window (see the module docstring)."""
    best = max((g for g in gains.values() if math.isfinite(g) and g > 0), default=0.0)
    out: dict[int, float] = {}
    for uid, g in gains.items():
        if not math.isfinite(g):
            out[uid] = -invalid_penalty
        else:  # valid: a share of the window's best gain, 0 when it did not help
            out[uid] = g / best if best > 0 and g > 0 else 0.0
    for uid in invalid:
        out[uid] = -invalid_penalty
    for uid in missing:
        out[uid] = -missing_penalty
    return out
