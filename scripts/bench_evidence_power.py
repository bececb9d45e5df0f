"""How often does an honest miner end a run unpaid, for a given per-window training evidence?

    python scripts/bench_evidence_power.py --mu 0.5,0.7,1.0 --windows 9,13 --alpha 0.45,0.02 --json

A model of the evidence, decided by the validator's own code: each window every miner's fit z
(``Measurement.fit_z``) is drawn from N(mu, 1) and its control-page gain from N(1, 0.1); the
window then goes through ``judge.Evidence`` and ``JudgeRules.pay`` (the accumulated evidence
test and its pay ramp), ``score.window_values`` (par gain, credited or unproven),
``score.Scoreboard`` (the moving average) and ``score.incentive_scores`` (the weights floor).
It prints, per mu, windows and alpha, the share of trials in which the first miner (whose
evidence mean is mu; the others' is ``--others-mu``) ends with no weight.

It measures the power of the decision rules, not of the statistic: what mu an honest upload
has is measured by scripts/bench_fit_signal.py, scripts/bench_fit_statistics.py and the local
subnet's logs (each decision's "fit z"). The CI end-to-end run (tests/e2e/test_localnet.py)
sizes its windows from this.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.validator.judge import Decision, Evidence, JudgeRules  # noqa: E402
from template.validator.score import Scoreboard, incentive_scores, window_values  # noqa: E402


def unpaid_share(
    mu: float,
    others_mu: float,
    miners: int,
    windows: int,
    rules: JudgeRules,
    score_alpha: float,
    trials: int,
    seed: int,
) -> float:
    """Share of ``trials`` in which miner 0 (evidence mean ``mu``) ends without weight."""
    rng = random.Random(seed)
    unpaid = 0
    for _ in range(trials):
        evidence, board = Evidence(), Scoreboard(score_alpha)
        for _w in range(windows):
            decisions = {}
            for uid in range(miners):
                z = evidence.add(uid, rng.gauss(mu if uid == 0 else others_mu, 1.0), rules.memory)
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
        unpaid += 0 not in incentive_scores(board.scores)
    return unpaid / trials


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mu", default="0.5,0.7,1.0,1.3", help="per-window fit z means of miner 0")
    p.add_argument("--others-mu", type=float, default=1.0, help="the other miners' mean")
    p.add_argument("--miners", type=int, default=2)
    p.add_argument("--windows", default="9,13,15", help="windows with uploads")
    p.add_argument("--alpha", default="0.45,0.02", help="--judge.alpha values")
    p.add_argument("--memory", type=float, default=JudgeRules.memory)
    p.add_argument("--score-alpha", type=float, default=0.3)
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    if a.miners < 1 or a.trials < 1:
        p.error("--miners and --trials must be at least 1")
    rows = []
    for alpha in _floats(a.alpha):
        if not 0 < alpha < 0.5:
            p.error(f"--alpha {alpha}: must be in (0, 0.5)")
        rules = JudgeRules(alpha=alpha, memory=a.memory)
        for windows in (int(w) for w in _floats(a.windows)):
            for mu in _floats(a.mu):
                share = unpaid_share(
                    mu, a.others_mu, a.miners, windows, rules, a.score_alpha, a.trials, a.seed
                )
                rows.append({"alpha": alpha, "windows": windows, "mu": mu, "unpaid": share})
                if not a.json:
                    print(f"alpha {alpha:<5} windows {windows:>3} mu {mu:<4} unpaid {share:.4f}")
    if a.json:
        print(
            json.dumps(
                {
                    "miners": a.miners,
                    "others_mu": a.others_mu,
                    "trials": a.trials,
                    "seed": a.seed,
                    "rows": rows,
                }
            )
        )


if __name__ == "__main__":
    main()
