"""Score: fold each window's decisions into per-uid scores; noise earns 0, only evidence costs.

A window's value for a uid (``window_values``):

- credited (proven training, judge.py): its control-page gain divided by the window's par
  gain (``par_gain``: the upper median of the credited gains), at most 1 (a lazy miner's
  smaller gain earns proportionally less), and at most the share of a window's pages it
  claims (``Decision.work``: gain copied from other uploads cannot pay for work it did not
  prove), times the part the judge pays for its evidence (``Decision.pay``: small just above
  the bar); a claim of part of the work earns at most its share of what the window's full
  claims earned (``full_work_rate``), or, in a window where no full claim earns, of what they
  earned in the latest window they did, up to ``score_rate_memory`` windows back
  (``FullWorkMemory``);
- unproven, unattributed (an unclear near-duplicate cluster) or a gain within noise: 0;
- rejected: by what the rejection proves (``PENALTY``): misbehaviour a miner controls
  (forged or malformed uploads, replays, pages outside its assignment) costs
  ``invalid_penalty``; what an honest miner can suffer by accident (missing, late,
  unreadable) costs ``missing_penalty``; copies, mixes, free riders and harmful uploads earn 0
  (they never earn; a copy verdict must never push an honest original below zero, and an
  honest upload trained on a model one aggregate behind can hurt when applied alone);
- passed every check but not measured this window (rotation): no update;
- a window in which no miner's upload was found at all: no update for anyone.

Scores are an exponential moving average of the values (``Scoreboard``), so incentive
follows sustained contribution and one false alarm cannot zero an honest score.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from template.chain.types import Metagraph

from .judge import Decision
from .outcomes import RejectCode, Rejection

INVALID, ACCIDENT, NOTHING = "invalid", "accident", "nothing"
PENALTY = {
    RejectCode.MISSING: ACCIDENT,
    RejectCode.UNREADABLE: ACCIDENT,
    RejectCode.EARLY: ACCIDENT,
    RejectCode.LATE: ACCIDENT,
    RejectCode.DOWNLOAD_FAILED: ACCIDENT,
    RejectCode.UNREVEALED: ACCIDENT,
    RejectCode.BAD_SEAL: INVALID,
    RejectCode.OVERSIZE: INVALID,
    RejectCode.MALFORMED: INVALID,
    RejectCode.BAD_SIGNATURE: INVALID,
    RejectCode.WRONG_FIELD: INVALID,
    RejectCode.WRONG_WINDOW: INVALID,
    RejectCode.BAD_PAGES: INVALID,
    RejectCode.REPLAY: INVALID,
    RejectCode.HARMFUL: NOTHING,  # proves the upload hurts now, not that its miner cheated
    RejectCode.OUT_OF_SYNC: INVALID,
    RejectCode.EVAL_FAILED: INVALID,
    RejectCode.DUPLICATE: NOTHING,
    RejectCode.MIX_OF_OTHERS: NOTHING,
    RejectCode.FREE_RIDER: NOTHING,
    RejectCode.NO_TRAINING_EVIDENCE: NOTHING,
}


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
        """Fold one window's value into the EMA, which starts at 0: a newcomer's first window
        cannot decide its score (nor a chance credit an adversary's). A non-finite value counts
        as -1 (never NaN)."""
        if not math.isfinite(value):
            value = -1.0
        value = max(-1.0, min(1.0, value))
        self.hotkeys[uid] = hotkey
        new = (1 - self.alpha) * self.scores.get(uid, 0.0) + self.alpha * value
        self.scores[uid] = new
        return new


def rejection_value(r: Rejection, *, invalid_penalty: float, missing_penalty: float) -> float:
    kind = PENALTY.get(r.code, INVALID)
    if kind == INVALID:
        return -invalid_penalty
    return -missing_penalty if kind == ACCIDENT else 0.0


def par_gain(decisions: Mapping[int, Decision]) -> float:
    """The gain that earns a full share this window: the upper median of the positive credited
    gains (the larger of the two middle ones). With the maximum, one upload whose gain is
    inflated by copying (the lazy mixer, docs/scoring_record.md) shrank every other value;
    the median takes a majority of the credited uploads to move. Gains within noise (<= 0)
    earn nothing and do not count, so they cannot pull the par to 0 and void the window."""
    gains = [d.gain for d in decisions.values() if d.earns]
    return statistics.median_high(gains) if gains else 0.0


def window_values(
    decisions: Mapping[int, Decision],
    rejected: Mapping[int, Rejection],
    *,
    invalid_penalty: float,
    missing_penalty: float,
    recent_rate: float | None = None,
) -> dict[int, float]:
    """The value each uid earned this window (see the module docstring). ``rejected``: the
    rejections of the stages before the judge (gather, verify, copies, mixes).
    ``recent_rate``: the full claims' rate that caps partial claims when no full claim earns
    this window (``FullWorkMemory.recent``; None: no cap then).

    A window in which no miner's upload was found at all holds nothing against anyone (no
    update): a fresh subnet's first window, whose model no miner had yet, or this validator's
    own outage (every HEAD failing), not a fault of each miner."""
    if not decisions and rejected and all(r.code is RejectCode.MISSING for r in rejected.values()):
        return {}
    par = par_gain(decisions)
    out: dict[int, float] = {}
    for uid, r in rejected.items():
        out[uid] = rejection_value(
            r, invalid_penalty=invalid_penalty, missing_penalty=missing_penalty
        )
    for uid, d in decisions.items():
        if d.rejection is not None:
            out[uid] = rejection_value(
                d.rejection, invalid_penalty=invalid_penalty, missing_penalty=missing_penalty
            )
        elif d.earns and par > 0:
            share = min(1.0, d.gain / par, max(0.0, d.work))
            out[uid] = share * max(0.0, min(1.0, d.pay))
        elif d.verdict != "not_evaluated":
            out[uid] = 0.0
    rate = full_work_rate(decisions, out)
    if rate is None:
        rate = recent_rate
    for uid, d in decisions.items():
        if rate is not None and d.earns and d.work < 1.0 and uid in out:
            out[uid] = min(out[uid], max(0.0, d.work) * rate)
    return out


def full_work_rate(decisions: Mapping[int, Decision], values: Mapping[int, float]) -> float | None:
    """What a whole window's work earned this window: the median value of the earning uploads
    that claim all of a window's pages (work 1); None when none earned. A part of the work
    (``Decision.work`` below 1) earns at most that rate times its share: evidence is read per
    sequence of the claimed pages, so a miner that trains a quarter of the steps on a third
    of the pages proves them about as strongly as a full claim (measured: a lazy miner's fit z
    per window was 0.9-1.2 times the honest miners'), and near the bar, where ``Decision.pay``
    rises steeply, a little more evidence paid it more than the honest miners' whole work
    (tiny from window 10: 3 of 16 runs, docs/scoring_record.md). The median takes a
    majority of the full claims to move."""
    full = [values[u] for u, d in decisions.items() if d.earns and d.work >= 1.0 and u in values]
    return statistics.median(full) if full else None


@dataclass
class FullWorkMemory:
    """The full claims' rate (``full_work_rate``) of the latest window in which a full claim
    earned, which caps partial claims in the next ``windows`` windows where none earns.

    Without it a window in which no full claim earned set no cap, and an honest crowd's
    evidence can stay under the bar for several windows at once (tiny from window 10: every
    honest miner's fit z dips in windows 13-22): there a lazy miner, credited alone, was paid
    by its own evidence, more than the honest miners' whole work had just earned, and out-earned
    them over the second half of a run (seed 42, docs/scoring_record.md). Only earning full
    claims set the rate, so junk full claims can neither raise nor lower it."""

    windows: int = 8
    window: int | None = None  # the latest window in which a full claim earned
    rate: float | None = None  # what full work earned then

    def recent(self, window: int) -> float | None:
        """The rate that caps partial claims of ``window`` when none of its full claims earns:
        the remembered one, if at most ``windows`` windows old."""
        if self.window is None or self.rate is None or not 0 < window - self.window <= self.windows:
            return None
        return self.rate

    def note(
        self, window: int, decisions: Mapping[int, Decision], values: Mapping[int, float]
    ) -> None:
        """Remember this window's rate, if a full claim earned in it."""
        rate = full_work_rate(decisions, values)
        if rate is not None:
            self.window, self.rate = window, rate


SCORE_FLOOR = 0.1  # share of the best score below which a score earns no weight


def incentive_scores(
    scores: Mapping[int, float], floor: float = SCORE_FLOOR, exclude: Collection[int] = ()
) -> dict[int, float]:
    """The scores that become weights: those at least ``floor`` x the best score, leaving out
    ``exclude`` (validators, this validator) before the best is taken: a miner turned validator
    keeps its score but earns no weight, so it must not raise the floor. A score only
    grows in credited windows, so an adversary that passed the training test by chance (rate
    alpha) decays below the floor within a few windows (0.3 x 0.7^4 < 0.1 x a full score)
    instead of keeping a decaying share for ever; an honest miner whose evidence dips for a
    window or two keeps most of its score."""
    kept = {u: s for u, s in scores.items() if u not in exclude and s > 0}
    best = max(kept.values(), default=0.0)
    return {u: s for u, s in kept.items() if s >= floor * best}
