"""Replay recorded benchmark runs through the score rules of this checkout.

``scripts/bench_incentives.py --trace`` records, per run, every window's judge decisions,
earlier rejections and values. The score stage (``score.window_values``, ``Scoreboard``,
``incentive_scores``) decides pay from those alone, and peers are chosen among the earning
uploads, so a change to the score rules can be tried on recorded runs in seconds instead of
re-training them (a change that reorders peers changes only the aggregate's summation order).

For each run this prints whether the recorded values are reproduced (``values_max_diff``: 0
on the code that recorded them) and the pay figures from the replayed scores: each window's
weights are ``incentive_scores`` normalised (the chain's u16 conformance and weight caps are
left out, so the shares differ from the recorded ones by that rounding).

    python scripts/replay_scores.py docs/img/RUNS.jsonl [--label PREFIX] [--pay-span X]
        [--rate-memory N] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_incentives import lazy_paid_less, pay_figures  # noqa: E402

from template.validator.judge import Decision, JudgeRules  # noqa: E402
from template.validator.outcomes import RejectCode, Rejection  # noqa: E402
from template.validator.score import (  # noqa: E402
    FullWorkMemory,
    Scoreboard,
    incentive_scores,
    window_values,
)


class TraceError(ValueError):
    """A recorded run that cannot be replayed (no trace, or a malformed one)."""


def decisions_of(entry: dict, rules: JudgeRules | None = None) -> dict[int, Decision]:
    """The judge's decisions of one traced window; with ``rules``, a credited upload's pay is
    ``rules.pay`` of its recorded evidence instead of the recorded pay."""
    out: dict[int, Decision] = {}
    for uid, (verdict, code, gain, work, pay, fit_z, evidence_z) in entry["decisions"].items():
        why = Rejection(RejectCode(code), "replayed") if code is not None else None
        if rules is not None and verdict == "credited" and evidence_z is not None:
            pay = rules.pay(evidence_z)
        out[int(uid)] = Decision(
            int(uid),
            verdict,
            why,
            gain=math.nan if gain is None else gain,
            fit_z=math.nan if fit_z is None else fit_z,
            evidence_z=math.nan if evidence_z is None else evidence_z,
            pay=pay,
            work=work,
        )
    return out


def rejections_of(entry: dict) -> dict[int, Rejection]:
    """The rejections before the judge of one traced window, missing uploads included."""
    out = {int(u): Rejection(RejectCode.MISSING, "replayed") for u in entry["missing"]}
    out.update({int(u): Rejection(RejectCode(c), "replayed") for u, c in entry["rejected"].items()})
    return out


def replay_run(run: dict, pay_span: float | None = None, rate_memory: int | None = None) -> dict:
    """One recorded run folded again: its values, scores and pay figures on this code.

    ``pay_span``: pay credited uploads on a pay ramp of this span (``JudgeRules.pay`` at the
    run's judge alpha) instead of the recorded pay. Only the pay changes: the span also sets
    which uids count as undecided (measured on more sequences) and the full-pay crowd of the
    reference, so a live validator with that span would have measured slightly other fit z.
    ``rate_memory``: ``--score.rate-memory`` (default: the run's; 0 for runs recorded before
    it existed, which had none)."""
    trace = run.get("trace")
    if not isinstance(trace, dict) or "windows" not in trace:
        raise TraceError(f"run of seed {run.get('seed')} has no trace: record it with --trace")
    rules = None
    if pay_span is not None:
        rules = JudgeRules(alpha=trace.get("judge_alpha", JudgeRules.alpha), pay_span=pay_span)
    kinds = {int(u): k for u, k in trace["kinds"].items()}
    board = Scoreboard(trace["score_alpha"])
    if rate_memory is None:
        rate_memory = int(trace.get("rate_memory", 0))
    full_work = FullWorkMemory(rate_memory)
    series: dict[str, list[float]] = {k: [] for k in sorted(set(kinds.values()))}
    weights: dict[int, float] = {}
    diff = 0.0
    for i, entry in enumerate(trace["windows"]):
        window = int(entry.get("window", i))  # hand-made traces may leave it out
        decisions = decisions_of(entry, rules)
        values = window_values(
            decisions,
            rejections_of(entry),
            invalid_penalty=trace["invalid_penalty"],
            missing_penalty=trace["missing_penalty"],
            recent_rate=full_work.recent(window),
        )
        full_work.note(window, decisions, values)
        recorded = {int(u): v for u, v in entry["values"].items()}
        if set(values) != set(recorded):
            diff = math.inf
        else:
            diff = max([diff, *(abs(values[u] - recorded[u]) for u in values)])
        for uid, v in values.items():
            board.update(uid, str(uid), v)
        kept = incentive_scores({u: s for u, s in board.scores.items() if u in kinds})
        total = sum(kept.values())
        weights = {u: s / total for u, s in kept.items()} if total > 0 else {}
        for k in series:
            series[k].append(sum(w for u, w in weights.items() if kinds[u] == k))
    pay = pay_figures(series, weights, kinds, "windows_to_weight_zero")
    replayed = {
        "honest_shares_of_equal": pay["honest_shares_of_equal"],
        "classes": pay["classes"],
    }
    return {
        "seed": run.get("seed"),
        "values_max_diff": diff,
        "min_honest_share_of_equal": pay["min_honest_share_of_equal"],
        "adversary_incentive_share": pay["adversary_incentive_share"],
        "lazy_paid_less": lazy_paid_less(replayed),
        "classes": {
            k: {
                "incentive_share": c["incentive_share"],
                "incentive_share_second_half": c["incentive_share_second_half"],
                "windows_to_weight_zero": c["windows_to_weight_zero"],
            }
            for k, c in pay["classes"].items()
        },
    }


def recorded_runs(path: Path, label: str = "") -> Iterator[tuple[str, dict]]:
    """(label, run) for every run in a benchmark JSON or JSON-lines file."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        docs = [json.loads(text)]
    for doc in docs:
        name = str(doc.get("_label", path.name))
        if not name.startswith(label):
            continue
        for preset in ("tiny", "small"):
            for run in doc.get(preset, {}).get("runs", []):
                yield f"{name}:{preset}", run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("path", type=Path, help="bench_incentives.py --trace output (.json / .jsonl)")
    p.add_argument("--label", default="", help="only records whose _label starts with this")
    p.add_argument(
        "--pay-span",
        type=float,
        default=None,
        help="pay credited uploads on this pay ramp (JudgeRules.pay_span; 0: in full at the "
        "bar) from their recorded evidence, instead of the recorded pay",
    )
    p.add_argument(
        "--rate-memory",
        type=int,
        default=None,
        help="--score.rate-memory of the replay (default: the run's; 0 for runs recorded "
        "before it existed)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if args.rate_memory is not None and args.rate_memory < 0:
        p.error(f"--rate-memory {args.rate_memory}: must be >= 0")
    if args.pay_span is not None and not args.pay_span >= 0:
        p.error(f"--pay-span {args.pay_span}: must be >= 0")
    try:
        runs = list(recorded_runs(args.path, args.label))
        out = [
            {"record": name, **replay_run(run, args.pay_span, args.rate_memory)}
            for name, run in runs
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # JSONDecodeError, TraceError
        p.error(f"{args.path}: not a benchmark trace ({type(e).__name__}: {e})")
    except OSError as e:
        p.error(f"{args.path}: {e}")
    if not out:
        p.error(f"{args.path}: no runs (label {args.label!r})")
    print(json.dumps({"runs": out}, indent=None if args.json else 2, default=float))


if __name__ == "__main__":
    main()
