"""Does an honest miner's uid position change its pay? Reads recorded incentive benchmarks.

The incentive benchmark gives its honest miners the first uids, in the same order in every
run. This script takes every recorded run with ``--honest`` honest miners from the given
``bench_incentives.py --json`` files (or JSON lines of them) and compares the first honest
uid's final share of its equal share with the mean of the others.

Runs of one (preset, seed) are not independent: the same seeds are re-run on each code
version, with the same initial model and, where the corpus and first window match, the same
page draws. The test averages them into one value per (preset, seed) (merging runs that
differ in corpus or first window too, which only makes it more cautious) and reports the mean difference, its standard error, and a
sign-flip permutation p-value over those clusters. The run-level figures are printed beside,
to show what ignoring the clustering would claim.

    python scripts/bench_uid_position.py docs/img/*.jsonl --honest 3 --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path


def recorded_runs(paths: list[Path], honest: int) -> dict[tuple, list[float]]:
    """Each distinct recorded run's honest shares of equal, keyed by preset, seed and the
    shares themselves: a record repeated, or a run replayed bit for bit, counts once."""
    runs: dict[tuple, list[float]] = {}
    for path in paths:
        for record in _records(path.read_text()):
            for preset, figures in record.items():
                if not isinstance(figures, dict):
                    continue
                listed = figures.get("runs")
                for run in listed if isinstance(listed, list) else []:
                    shares = run.get("honest_shares_of_equal") if isinstance(run, dict) else None
                    if not isinstance(shares, list) or len(shares) != honest:
                        continue
                    if not all(isinstance(x, int | float) for x in shares):
                        raise SystemExit(f"{path}: a run's honest_shares_of_equal is not numbers")
                    key = (preset, run.get("seed"), tuple(round(x, 9) for x in shares))
                    runs[key] = list(shares)
    return runs


def _records(text: str) -> list[dict]:
    """One JSON object (a ``--json`` output), or JSON lines of them; other lines are skipped."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        lines = []
        for line in text.splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [r for r in lines if isinstance(r, dict)]
    return [whole] if isinstance(whole, dict) else []


def first_minus_others(shares: list[float]) -> float:
    return shares[0] - statistics.mean(shares[1:])


def sign_flip_p(diffs: list[float], shuffles: int, seed: int) -> float:
    """Two-sided p of the mean difference under 'position does not matter' (each cluster's
    difference as likely negative as positive)."""
    observed = abs(statistics.mean(diffs))
    rng = random.Random(seed)
    hits = sum(
        abs(statistics.mean(d if rng.random() < 0.5 else -d for d in diffs)) >= observed
        for _ in range(shuffles)
    )
    return (hits + 1) / (shuffles + 1)


def summary(diffs: list[float]) -> dict:
    mean = statistics.mean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    return {"n": len(diffs), "mean": mean, "se": se, "z": mean / se if se else None}


def analyse(paths: list[Path], honest: int, shuffles: int, seed: int) -> dict:
    runs = recorded_runs(paths, honest)
    if len(runs) < 2:
        raise SystemExit(f"fewer than 2 recorded runs with {honest} honest miners in the files")
    clusters: dict[tuple, list[float]] = {}
    for (preset, run_seed, _), shares in runs.items():
        clusters.setdefault((preset, run_seed), []).append(first_minus_others(shares))
    cluster_diffs = [statistics.mean(d) for d in clusters.values()]
    per_position = list(zip(*runs.values(), strict=True))
    return {
        "honest": honest,
        "runs": len(runs),
        "clusters": len(clusters),
        "position_mean_share_of_equal": [statistics.mean(p) for p in per_position],
        "position_under_half": [sum(x < 0.5 for x in p) for p in per_position],
        "runs_first_minus_others": summary([first_minus_others(s) for s in runs.values()]),
        "clusters_first_minus_others": {
            **summary(cluster_diffs),
            "sign_flip_p": sign_flip_p(cluster_diffs, shuffles, seed),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="bench_incentives.py --json records")
    parser.add_argument("--honest", type=int, default=3, help="runs with this many honest miners")
    parser.add_argument("--shuffles", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="the permutation's random seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.honest < 2:
        parser.error("--honest must be at least 2 (the first is compared with the others)")
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    out = analyse(args.files, args.honest, args.shuffles, args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        c = out["clusters_first_minus_others"]
        print(
            f"{out['runs']} runs in {out['clusters']} (preset, seed) clusters: first honest uid "
            f"minus the others {c['mean']:+.4f} +/- {c['se']:.4f} (p = {c['sign_flip_p']:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
