"""Judge: statistical decisions on the measurements, each with a known false-positive rate.

Three questions per measured upload (measure.py gives the per-sequence figures):

- **Did it train on its own pages?** One window's evidence is ``fit_z``: the paired own-page
  excess over control pages in standard errors (about N(0, 1) for an upload that did not see
  its pages). Evidence accumulates per uid as a discounted Stouffer sum,
  ``Z = S / sqrt(V)`` with ``S <- m S + z`` and ``V <- m^2 V + 1`` (m = ``memory``), which is
  again N(0, 1) for a non-trainer at every window. The uid is *proven* while
  ``Z >= z(1 - alpha)``: a one-sided test whose false-positive rate per window is ``alpha``
  (measured by scripts/bench_incentives.py). Only proven uploads earn and become peers, and
  their pay grows with the evidence (``JudgeRules.pay``): a uid that just crossed the bar,
  which is where a chance crossing (rate alpha) lands, is paid a small part of its gain.
- **Is it harmful?** ``harm_z`` (the control-page gain in standard errors) below
  ``-harm_z``: a per-sequence paired test, not a tolerance on two pages.
- **Who is the original of a near-duplicate cluster?** The member whose content fits its own
  assigned pages: the highest evidence Z. It keeps its verdict (credited when proven) unless
  another member is proven too and within ``z_lead`` of it; the others earn nothing this
  window (``unattributed``).
  Evidence never *rejects* a member: a copier proven by chance (rate ``alpha``) next to an
  original whose proof is still young must not brand the original a copy (measured: it did,
  once in 36 honest uploads). Only the validator's own first-seen order proves who copied
  (copies.py). A copy never fits the copier's pages, so it cannot take an original's credit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist

from .measure import Measurement
from .outcomes import RejectCode, Rejection

logger = logging.getLogger(__name__)

Z_CLIP = 3.0  # one window's z counts at most this much (outliers cannot make a proof)


@dataclass(frozen=True)
class JudgeRules:
    alpha: float = 0.01  # false-positive rate of the training-evidence test, per window
    memory: float = 0.95  # discount of one window's evidence per window of age
    harm_z: float = 3.0  # control-page loss rise, in standard errors, that is harmful
    # evidence a fallback peer needs, and the reference's crowd while fewer than two uids are
    # proven (a non-trainer has it in 16% of windows)
    lean_z: float = 1.0
    undecided_from: float = 0.5  # evidence from which an unpaid-in-full uid is measured more
    pay_span: float = 1.0  # pay rises from 0 at the bar to 1 at (1 + pay_span) x the bar

    @property
    def z_proof(self) -> float:
        return NormalDist().inv_cdf(1.0 - self.alpha)

    def pay(self, evidence_z: float) -> float:
        """The part of its gain a proven upload earns: 0 at the bar ``z_proof``, rising
        linearly to 1 at twice the bar. A non-trainer that crosses the bar by chance hovers
        near it (measured: a copier's chance proof sat at Z 2.1-3.3 for 14 windows, small
        preset, seed 4, next to its victim's 5-9), while an honest miner's evidence grows with
        every window it trains, so chance credits pay little and sustained training in full."""
        bar = self.z_proof
        if bar <= 0 or self.pay_span <= 0:
            return 1.0 if evidence_z >= bar else 0.0
        return max(0.0, min(1.0, (evidence_z - bar) / (self.pay_span * bar)))

    @property
    def z_full_pay(self) -> float:
        """The evidence at which ``pay`` reaches 1."""
        return (1.0 + max(0.0, self.pay_span)) * self.z_proof

    def undecided(self, evidence_z: float) -> bool:
        """Evidence that leans towards training but is not yet paid in full (``pay`` below
        1): where more sequences can still change a verdict. A proven miner far above the bar
        needs none, and a uid whose evidence leans against training (a non-trainer in most
        windows) is left at the normal cost; a non-trainer's fit stays N(0, 1) at any sample
        size, so the test's false-positive rate does not depend on who is measured more."""
        return self.undecided_from <= evidence_z < self.z_full_pay

    @property
    def z_lead(self) -> float:
        """How far one uid's evidence must lead another's to tell them apart: a one-sided test
        at rate ``alpha`` on the difference of two unit-variance evidence statistics."""
        return math.sqrt(2.0) * self.z_proof


@dataclass
class Evidence:
    """Discounted Stouffer sums of each uid's training evidence (kept in the state)."""

    s: dict[int, float] = field(default_factory=dict)
    v: dict[int, float] = field(default_factory=dict)

    def z(self, uid: int) -> float:
        v = self.v.get(uid, 0.0)
        return self.s.get(uid, 0.0) / math.sqrt(v) if v > 0 else 0.0

    def with_window(self, uid: int, z: float, memory: float) -> tuple[float, float]:
        """(S, V) after adding one window's z (not stored)."""
        z = max(-Z_CLIP, min(Z_CLIP, z)) if math.isfinite(z) else -Z_CLIP
        return memory * self.s.get(uid, 0.0) + z, memory * memory * self.v.get(uid, 0.0) + 1.0

    def add(self, uid: int, z: float, memory: float) -> float:
        self.s[uid], self.v[uid] = self.with_window(uid, z, memory)
        return self.z(uid)

    def forget(self, uid: int) -> None:
        self.s.pop(uid, None)
        self.v.pop(uid, None)


@dataclass(frozen=True)
class Decision:
    """The judge's verdict on one uid's upload of a window (logged and kept in the status).

    ``verdict``: credited (proven: earns its gain), unproven (no evidence yet: earns 0),
    unattributed (a near-duplicate cluster without a clear original: earns 0), rejected
    (``rejection`` says why), not_evaluated (rotation: score unchanged)."""

    uid: int
    verdict: str
    rejection: Rejection | None = None
    gain: float = 0.0  # mean control-page loss gain (nats per token, at the proof scale)
    fit_z: float = 0.0  # this window's own-page evidence
    evidence_z: float = 0.0  # accumulated evidence after this window
    gain_z: float = 0.0  # the control-page gain in standard errors (harm when very negative)
    pay: float = 1.0  # the part of its gain a credited upload earns (JudgeRules.pay)
    duplicated: bool = False  # in a near-duplicate cluster whose copier is not proven
    work: float = 1.0  # the share of a window's work (pages_per_window) its page claim covers
    boosted: bool = False  # measured on more sequences (undecided evidence, measure.py)

    @property
    def credited(self) -> bool:
        return self.verdict == "credited"

    @property
    def earns(self) -> bool:
        """Credited and lowers the control loss (gain > 0): what a window pays for
        (score.window_values) and what may be a peer. A non-trainer credited by chance (rate
        alpha) whose delta does not help, such as a random one, earns nothing and stays out of
        the aggregate (before, in the tiny benchmark, seed 0, a random delta was a peer in 6
        windows)."""
        return self.credited and math.isfinite(self.gain) and self.gain > 0

    def helps(self, gain_z: float, lean_z: float) -> bool:
        """Unproven, not a member of a near-duplicate cluster, lowers the control loss by
        ``gain_z`` standard errors and leans towards training (evidence >= ``lean_z``): a peer
        while no upload of the window is credited."""
        return (
            self.verdict == "unproven"
            and not self.duplicated
            and self.gain_z >= gain_z
            and self.evidence_z >= lean_z
        )

    def __str__(self) -> str:
        why = f" ({self.rejection})" if self.rejection is not None else ""
        paid = f", pay {self.pay:.2f}" if self.credited else ""
        dup = ", near-duplicate or mix pair" if self.duplicated else ""
        part = f", work {self.work:.2f}" if self.work < 1.0 else ""
        more = ", more sequences" if self.boosted else ""
        return (
            f"uid {self.uid}: {self.verdict}{why}, gain {self.gain:+.4g}, fit z {self.fit_z:+.2f}, "
            f"evidence Z {self.evidence_z:+.2f}{paid}{part}{more}{dup}"
        )


def judge_window(
    measured: Mapping[int, Measurement],
    clusters: Iterable[Iterable[int]],
    evidence: Evidence,
    rules: JudgeRules,
    work: Mapping[int, float] | None = None,
    boosted: Collection[int] = (),
) -> dict[int, Decision]:
    """Decisions for the measured uploads; ``evidence`` is updated with this window.

    ``clusters``: the undecided members of each near-duplicate cluster (copies.Cluster).
    ``work``: uid -> the share of a window's pages its upload claims (default 1).
    ``boosted``: the uids measured on more sequences (noted in their decisions)."""
    work = work or {}
    out: dict[int, Decision] = {}
    for uid, m in sorted(measured.items()):
        if not m.finite:
            out[uid] = Decision(
                uid, "rejected", Rejection(RejectCode.HARMFUL, "non-finite loss after the delta")
            )
            evidence.add(uid, -Z_CLIP, rules.memory)
            continue
        z = evidence.add(uid, m.fit_z, rules.memory)
        common = dict(
            gain=m.control_mean,
            fit_z=m.fit_z,
            evidence_z=z,
            gain_z=m.harm_z,
            work=work.get(uid, 1.0),
            boosted=uid in boosted,
        )
        if m.harm_z < -rules.harm_z:
            why = Rejection(
                RejectCode.HARMFUL,
                f"raises the control-page loss by {-m.control_mean:.4g} "
                f"({m.harm_z:+.1f} standard errors, limit -{rules.harm_z})",
            )
            out[uid] = Decision(uid, "rejected", why, **common)
        elif z >= rules.z_proof:
            out[uid] = Decision(uid, "credited", None, **common, pay=rules.pay(z))
        else:
            out[uid] = Decision(uid, "unproven", None, **common)
    for members in clusters:
        _attribute(out, [u for u in members if u in out], rules)
    return out


def _attribute(out: dict[int, Decision], members: list[int], rules: JudgeRules) -> None:
    """Settle one cluster by page fit: the member whose content fits its own pages best keeps
    its verdict (credited when proven) unless another member is proven too and its evidence
    is not clearly behind (within ``rules.z_lead``); the others earn nothing this window and
    are never peers. Nobody is rejected here: evidence can be wrong by chance, the first-seen
    order (copies.py) cannot. A copier proven by chance (rate alpha) thus cannot take the
    credit of an original whose evidence is far ahead of its own."""
    live = [u for u in members if out[u].rejection is None]
    if len(live) < 2:
        return
    for uid in live:
        out[uid] = replace(out[uid], duplicated=True)
    ranked = sorted(live, key=lambda u: -out[u].evidence_z)
    best = out[ranked[0]]
    for uid in ranked[1:]:
        out[uid] = replace(out[uid], verdict="unattributed")
    if any(
        out[u].evidence_z >= rules.z_proof and best.evidence_z - out[u].evidence_z < rules.z_lead
        for u in ranked[1:]
    ):
        out[best.uid] = replace(best, verdict="unattributed")


def helpful_uploads(decisions: Mapping[int, Decision], rules: JudgeRules) -> list[Decision]:
    """Peers for a window without a credited upload, best evidence first: unproven uploads
    outside near-duplicate clusters that lower the control loss by ``rules.harm_z`` standard
    errors, lean towards training (evidence >= ``rules.lean_z``: an upload that did not train
    on its pages has Z >= 1 in 16% of windows) and gain at least half the best of them (a
    random delta's occasional small gain does not qualify)."""
    cands = [d for d in decisions.values() if d.helps(rules.harm_z, rules.lean_z)]
    best = max((d.gain for d in cands), default=0.0)
    return sorted((d for d in cands if d.gain >= 0.5 * best), key=lambda d: -d.evidence_z)


def log_decisions(window: int, decisions: Mapping[int, Decision]) -> None:
    for d in decisions.values():
        logger.info("window %d: %s", window, d)
