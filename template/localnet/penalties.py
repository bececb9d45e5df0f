"""A chaos run's ``honest_penalised``: honest uploads rejected or missing because of a fault
that was not theirs (every miner of a local subnet is honest).

Per window and uid, from the leading validator's records:

- excused: an upload missing, late, unreadable, unrevealed or whose download failed in a
  window a fault touched (the fault's window and the next: an outage makes everyone late),
  or while the miner itself was down (from the window it was killed in to the one it was
  running again in): being late during an outage, or absent while killed, is not a penalty
  for a fault that was not the miner's;
- penalised: every other rejection (a harmful, out-of-sync or invalid verdict on an honest
  upload is always a fault of the subnet), and every other missing upload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .monitor import Tracker

# "unrevealed": a seal key lost with a killed miner, or not readable during an outage
OUTAGE_CODES = ("missing", "late", "unreadable", "download_failed", "early", "unrevealed")


@dataclass
class Penalties:
    penalised: list[dict] = field(default_factory=list)  # {"window", "uid", "why"}
    excused: list[dict] = field(default_factory=list)

    @property
    def rejected(self) -> list[dict]:
        return [p for p in self.penalised if p["why"] != "missing"]

    @property
    def missing(self) -> list[dict]:
        return [p for p in self.penalised if p["why"] == "missing"]


def count_penalties(
    tracker: Tracker,
    fault_windows: Iterable[int],
    down: Mapping[str, list[tuple[int, int]]],
) -> Penalties:
    """``fault_windows``: the windows faults were injected in; ``down``: per miner name, the
    (killed, running again) window spans of its own restarts."""
    touched = {w for f in fault_windows for w in (f, f + 1)}
    uid_down = {str(uid): list(down.get(name, [])) for name, uid in tracker.miners.items()}
    out = Penalties()
    lead = tracker.history.get(tracker.leader, {})
    for w, rec in sorted(tracker.windows.items()):
        decided = (lead.get(w) or {}).get("decisions") or {}
        present = set(rec.rejected) | {str(u) for u in decided}
        expected = {
            str(uid)
            for name, uid in tracker.miners.items()
            if tracker.first_status_window.get(name, 1 << 62) <= w
        }
        verdicts = dict(rec.rejected)
        if len(present) >= (rec.uploads_seen or 0):  # who uploaded is known
            verdicts |= {u: "missing" for u in expected - present}
        else:  # an older status without decisions: count only
            gap = max(0, len(expected) - rec.uploads_seen)
            verdicts |= {f"?{i}": "missing" for i in range(gap)}
        for uid, why in sorted(verdicts.items()):
            code = why.split(":", 1)[0].strip()
            away = any(a <= w <= b for a, b in uid_down.get(uid, []))
            excused = code in OUTAGE_CODES and (w in touched or away)
            (out.excused if excused else out.penalised).append(
                {"window": w, "uid": uid, "why": why}
            )
    return out
