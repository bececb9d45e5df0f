"""Do some uids' fit z stay high across windows beyond chance? (docs/scoring_record.md)

    python scripts/bench_evidence_persistence.py docs/img/wrong_pages_crowd_20261205.jsonl --json
    python scripts/bench_evidence_persistence.py RUNS.jsonl --class shadow --shuffles 500 --json

Reads the JSON objects ``bench_incentives.py --json`` prints (one per line; other lines are
skipped; ``--label`` keeps the recorded objects of that ``_label``) and takes each run's
per-window fit z of one class (``classes.<CLASS>.fit_z``, window-major in uid order; runs
whose count is not a multiple of ``windows``, or with one uid of the class, are skipped).
Each uid's z go through the judge's own evidence test (``judge.Evidence`` and
``JudgeRules``: the discounted sum, its clip and the bar), and the script counts the uploads
the test would credit. Against that count, the same with each window's values shuffled among
the class's uids (``--shuffles`` times): exchangeable uids with the same windows, the same
values and the streaks the discounted sum makes of them. More credits than the shuffles give
(a small ``p``) say that some uids' z stay high across windows, the per-uid persistence that
turns a crowd of non-trainers' chance credits into weight held for many windows.

Prints one JSON object (``--json``): runs, uploads, credited (and its share), the shuffled
mean, SD and ``p`` (the share of shuffles crediting at least as many), the mean for
independent N(0, 1) z of the same shape, and the correlation between each uid's mean z over
the first and the second half of its windows (window means removed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.validator.judge import Evidence, JudgeRules  # noqa: E402


def class_runs(lines, kind: str, labels: set[str] | None = None) -> list[np.ndarray]:
    """Each run's fit z of class ``kind`` as a (windows, uids) array, from benchmark output
    (``labels``: only the objects whose ``_label`` is one of them)."""
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {n} is not a JSON object: {e}") from None
        if labels and doc.get("_label") not in labels:
            continue
        windows = doc.get("windows")
        for preset in ("tiny", "small"):
            for run in (doc.get(preset) or {}).get("runs", []):
                z = run.get("classes", {}).get(kind, {}).get("fit_z")
                if not z or not isinstance(windows, int) or len(z) % windows:
                    continue
                out.append(np.asarray(z, dtype=float).reshape(windows, len(z) // windows))
    return out


def credited(runs: list[np.ndarray], rules: JudgeRules) -> int:
    """Uploads whose accumulated evidence after their window is at the bar."""
    bar, count = rules.z_proof, 0
    for z in runs:
        evidence = Evidence()
        for row in z:
            for uid, value in enumerate(row):
                count += evidence.add(uid, float(value), rules.memory) >= bar
    return count


def split_half_correlation(runs: list[np.ndarray]) -> float:
    first, second = [], []
    for z in runs:
        r = z - z.mean(axis=1, keepdims=True)
        half = len(r) // 2
        first += list(r[:half].mean(axis=0))
        second += list(r[half:].mean(axis=0))
    if len(first) < 3:
        return float("nan")
    return float(np.corrcoef(first, second)[0, 1])


def persistence(runs: list[np.ndarray], rules: JudgeRules, shuffles: int, seed: int) -> dict:
    if shuffles < 1:
        raise ValueError(f"shuffles must be at least 1, got {shuffles}")
    rng = np.random.default_rng(seed)
    seen = credited(runs, rules)
    shuffled = np.array(
        [credited([rng.permuted(z, axis=1) for z in runs], rules) for _ in range(shuffles)]
    )
    iid = [credited([rng.standard_normal(z.shape) for z in runs], rules) for _ in range(shuffles)]
    uploads = int(sum(z.size for z in runs))
    return {
        "runs": len(runs),
        "uploads": uploads,
        "credited": int(seen),
        "credited_share": seen / uploads if uploads else None,
        "shuffled_mean": float(shuffled.mean()),
        "shuffled_sd": float(shuffled.std()),
        "p": float((shuffled >= seen).mean()),
        "iid_mean": float(np.mean(iid)),
        "split_half_correlation": split_half_correlation(runs),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="bench_incentives.py --json output")
    p.add_argument("--class", dest="kind", default="wrong_pages")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        help="only the objects with this _label (as recorded in docs/img; repeatable)",
    )
    p.add_argument("--alpha", type=float, default=JudgeRules().alpha, help="--judge.alpha")
    p.add_argument("--memory", type=float, default=JudgeRules().memory, help="--judge.memory")
    p.add_argument("--shuffles", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.shuffles < 1:
        p.error(f"--shuffles {args.shuffles}: must be >= 1")
    if not 0 < args.alpha < 1:
        p.error(f"--alpha {args.alpha}: must be in (0, 1)")
    if not 0 < args.memory <= 1:
        p.error(f"--memory {args.memory}: must be in (0, 1]")
    runs: list[np.ndarray] = []
    for f in args.files:
        if not f.is_file():
            p.error(f"{f}: no such file")
        try:
            runs += class_runs(f.read_text().splitlines(), args.kind, set(args.label))
        except ValueError as e:
            p.error(f"{f}: {e}")
    if not runs:
        p.error(f"no run with per-window fit z of class {args.kind!r} in {len(args.files)} file(s)")
    runs = [z for z in runs if z.shape[1] >= 2]  # one uid per window: nothing to shuffle
    if not runs:
        p.error(f"class {args.kind!r} has one uid per run: nothing to shuffle")
    rules = JudgeRules(alpha=args.alpha, memory=args.memory)
    out = {"class": args.kind, "files": [str(f) for f in args.files], "labels": args.label}
    out |= persistence(runs, rules, args.shuffles, args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
