"""How often does an honest miner end a run unpaid, and a non-trainer hold weight late in it,
for a given per-window training evidence and decision rules?

    python scripts/bench_evidence_power.py --mu 0.5,0.7,1.0 --windows 9,13 --alpha 0.45,0.02 --json
    python scripts/bench_evidence_power.py --mu 1.1,1.4,2.0 --nulls 3 --alpha 0.02,0.01 --json
    python scripts/bench_evidence_power.py --mu 1.1 --nulls 3 --alpha 0.01 --boost 0.5,4.65,1.12 --json
    python scripts/bench_evidence_power.py --mu 1.0 --others-mu 1.8 --miners 3 --nulls 3 \
        --alpha 0.01 --pay-span 1,0.5 --boost-gain 1.12 --json

A model of the evidence, decided by the validator's own code: each window every miner's fit z
(``Measurement.fit_z``) is drawn from N(mu, 1) and its control-page gain from N(1, 0.1); the
window then goes through ``judge.Evidence`` and ``JudgeRules.pay`` (the accumulated evidence
test and its pay ramp), ``score.window_values`` (par gain, credited or unproven),
``score.Scoreboard`` (the moving average) and ``score.incentive_scores`` (the weights floor).

It prints, per rule, windows and mu:

- ``unpaid``: the share of trials in which the first miner (whose evidence mean is mu; the
  others' is ``--others-mu``, by default mu too) ends with no weight;
- ``below_half``: the share of trials in which it ends with less than half of an equal share
  of the final weights (the issue's target for every honest miner);
- with ``--nulls N``: N more uids whose fit z is N(0, 1) (they never trained on their pages)
  and whose gain is an honest one's (the wrong-pages miner: it trains, on other pages), and
  ``null_late``, the share of them with weight in any window from ``--late`` on (the issue's
  target: every adversary class at weight 0 within 8 windows), and ``null_share``, their mean
  share of the final weights together.

Every rule that lowers ``null_late`` (a lower alpha, a higher floor) raises ``unpaid`` where
the evidence is weak; the two figures side by side are the trade-off.

``--boost LO,HI,G`` models the adaptive evaluation (``--eval.boost``; the validator's rule is
``JudgeRules.undecided``: LO 0.5, HI twice the bar, 4.65 at alpha 0.01): a uid whose accumulated
evidence before the window is in [LO, HI) is measured with more sequences, which multiplies a
trainer's fit z mean by G (sqrt(K) for K times the own and control sequences, less where the
upload's claim caps its own sequences) and leaves a non-trainer's at N(0, 1). ``boosted_miners``
and ``boosted_nulls`` are the shares of their uploads so measured (the extra evaluation).
``--boost-gain G`` takes LO and HI from the rules themselves (``JudgeRules.undecided``, which
ends where pay is full: it moves with ``--pay-span``, ``JudgeRules.pay_span``).

It measures the power of the decision rules, not of the statistic: what mu an honest upload
has is measured by scripts/bench_fit_signal.py, scripts/bench_fit_statistics.py and the local
subnet's logs (each decision's "fit z"). The CI end-to-end run (tests/e2e/test_localnet.py)
sizes its windows from this.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.validator.judge import Decision, Evidence, JudgeRules  # noqa: E402
from template.validator.score import (  # noqa: E402
    SCORE_FLOOR,
    Scoreboard,
    incentive_scores,
    window_values,
)


def run_trials(
    mu: float,
    others_mu: float,
    miners: int,
    windows: int,
    rules: JudgeRules,
    score_alpha: float,
    trials: int,
    seed: int,
    *,
    nulls: int = 0,
    floor: float = SCORE_FLOOR,
    late: int = 8,
    boost: tuple[float, float, float] | None = None,
) -> dict[str, float]:
    """``unpaid``: share of trials in which miner 0 (evidence mean ``mu``) ends without weight;
    ``null_late``: share of the ``nulls`` non-trainers with weight in a window >= ``late``;
    ``boost``: (lo, hi, gain), see the module docstring."""
    rng = random.Random(seed)
    unpaid = late_weight = below_half = 0
    null_share = 0.0
    lo, hi, z_gain = boost or (0.0, 0.0, 1.0)
    boosted = {True: [0, 0], False: [0, 0]}  # is a miner -> [boosted, measured]
    for _ in range(trials):
        evidence, board = Evidence(), Scoreboard(score_alpha)
        seen_late: set[int] = set()
        for w in range(windows):
            decisions = {}
            for uid in range(miners + nulls):
                mean = mu if uid == 0 else others_mu if uid < miners else 0.0
                more = lo <= evidence.z(uid) < hi
                boosted[uid < miners][0] += more
                boosted[uid < miners][1] += 1
                z = evidence.add(
                    uid, rng.gauss(mean * (z_gain if more else 1.0), 1.0), rules.memory
                )
                gain = max(1e-6, rng.gauss(1.0, 0.1))
                if z >= rules.z_proof:
                    decisions[uid] = Decision(
                        uid, "credited", gain=gain, evidence_z=z, pay=rules.pay(z)
                    )
                else:
                    decisions[uid] = Decision(uid, "unproven", gain=gain, evidence_z=z)
            values = window_values(decisions, {}, invalid_penalty=1.0, missing_penalty=0.25)
            for uid, v in values.items():
                board.update(uid, str(uid), v)
            if w >= late:
                paid = incentive_scores(board.scores, floor)
                seen_late |= {u for u in paid if u >= miners}
        paid = incentive_scores(board.scores, floor)
        total = sum(paid.values())
        share = {u: s / total for u, s in paid.items()} if total > 0 else {}
        unpaid += 0 not in paid
        below_half += share.get(0, 0.0) < 0.5 / miners
        null_share += sum(s for u, s in share.items() if u >= miners)
        late_weight += len(seen_late)
    out = {
        "unpaid": unpaid / trials,
        "below_half": below_half / trials,
        "null_late": late_weight / (trials * nulls) if nulls else 0.0,
        "null_share": null_share / trials,
    }
    if boost is not None:
        out["boosted_miners"] = boosted[True][0] / boosted[True][1]
        out["boosted_nulls"] = boosted[False][0] / max(1, boosted[False][1])
    return out


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mu", default="0.5,0.7,1.0,1.3", help="per-window fit z means of miner 0")
    p.add_argument(
        "--others-mu", type=float, default=None, help="the other miners' mean (default: mu)"
    )
    p.add_argument("--miners", type=int, default=2)
    p.add_argument("--nulls", type=int, default=0, help="non-trainers beside the miners")
    p.add_argument("--late", type=int, default=8, help="null_late counts weight from here on")
    p.add_argument("--windows", default="9,13,15", help="windows with uploads")
    p.add_argument("--alpha", default="0.45,0.02", help="--judge.alpha values")
    p.add_argument("--floor", default=str(SCORE_FLOOR), help="weights floors (score.SCORE_FLOOR)")
    p.add_argument("--memory", type=float, default=JudgeRules.memory)
    p.add_argument(
        "--pay-span",
        default=str(JudgeRules.pay_span),
        help="JudgeRules.pay_span values (pay is full at (1 + span) x the bar)",
    )
    p.add_argument("--score-alpha", type=float, default=0.3)
    p.add_argument(
        "--boost", default=None, help="LO,HI,G: more sequences while evidence is in [LO, HI)"
    )
    p.add_argument(
        "--boost-gain",
        type=float,
        default=None,
        help="G: more sequences where the rules' own JudgeRules.undecided says (LO, HI from them)",
    )
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    if a.miners < 1 or a.trials < 1 or a.nulls < 0 or a.late < 0:
        p.error("--miners and --trials must be at least 1, --nulls and --late at least 0")
    boost = None
    if a.boost is not None:
        parts = _floats(a.boost)
        if len(parts) != 3 or not parts[0] < parts[1] or parts[2] < 1:
            p.error(f"--boost {a.boost}: want LO,HI,G with LO < HI and G >= 1")
        boost = (parts[0], parts[1], parts[2])
    if a.boost_gain is not None and (boost is not None or a.boost_gain < 1):
        p.error("--boost-gain G: G >= 1, and not with --boost")
    floors, alphas, spans = _floats(a.floor), _floats(a.alpha), _floats(a.pay_span)
    for floor in floors:
        if not 0 <= floor < 1:
            p.error(f"--floor {floor}: must be in [0, 1)")
    for alpha in alphas:
        if not 0 < alpha < 0.5:
            p.error(f"--alpha {alpha}: must be in (0, 0.5)")
    for span in spans:
        if span < 0:
            p.error(f"--pay-span {span}: must be >= 0 (0: full pay at the bar)")
    rows = []
    grid = itertools.product(floors, alphas, spans, (int(w) for w in _floats(a.windows)))
    for floor, alpha, span, windows in grid:
        rules = JudgeRules(alpha=alpha, memory=a.memory, pay_span=span)
        if a.boost_gain is not None:
            boost = (rules.undecided_from, rules.z_full_pay, a.boost_gain)
        for mu in _floats(a.mu):
            others = mu if a.others_mu is None else a.others_mu
            got = run_trials(
                mu,
                others,
                a.miners,
                windows,
                rules,
                a.score_alpha,
                a.trials,
                a.seed,
                nulls=a.nulls,
                floor=floor,
                late=a.late,
                boost=boost,
            )
            row = {"alpha": alpha, "floor": floor, "pay_span": span, "windows": windows, "mu": mu}
            row.update(got)
            if not a.nulls:
                row.pop("null_late")
                row.pop("null_share")
            rows.append(row)
            if not a.json:
                late = (
                    f" null_late {got['null_late']:.4f} null_share {got['null_share']:.4f}"
                    if a.nulls
                    else ""
                )
                print(
                    f"alpha {alpha:<5} floor {floor:<4} span {span:<4} windows {windows:>3} "
                    f"mu {mu:<4} unpaid {got['unpaid']:.4f} below_half {got['below_half']:.4f}"
                    f"{late}"
                )
    if a.json:
        print(
            json.dumps(
                {
                    "miners": a.miners,
                    "others_mu": a.others_mu,
                    "nulls": a.nulls,
                    "late": a.late,
                    "memory": a.memory,
                    "boost": a.boost,
                    "trials": a.trials,
                    "seed": a.seed,
                    "rows": rows,
                }
            )
        )


if __name__ == "__main__":
    main()
