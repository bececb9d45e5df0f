"""Which per-window fit statistic separates training from not training best, at a known rate?

    python scripts/bench_fit_statistics.py --seeds 2 --first-seed 0 --windows 16 --json
    python scripts/bench_fit_statistics.py --seeds 2 --first-seed 6 --first-window 10 --json
    python scripts/bench_fit_statistics.py --seeds 1 --first-seed 6 --first-window 10 \
        --windows 16 --classes lazy,lazy_mixer,aggregator,... --json

Runs scripts/bench_incentives.py's simulation (tiny preset: ``--honest`` honest miners, a lazy
miner and ``--nulls`` wrong-pages miners, which train honestly on pages they were not assigned:
the null of the fit test) and records, for every measured upload, its per-sequence losses on
its own and the control sequences (before, after the reference, after the upload). Then it
computes candidate statistics on the same figures and prints, per statistic and class, the
mean, the SD and the share of windows above z(0.98) = 2.054:

- ``iid``: the pooled two-sample z of the paired excesses (the judge's statistic until
  2026-12-02);
- ``clustered``: ``Measurement.fit_z``, the judge's (own sequences clustered by page, Welch
  df, t to z, the crowd's gain as a control variate with a fitted slope);
- ``clustered_estimated_df``: the same with the Welch degrees of freedom weighed by the
  clustered variances (the judge's until the eighteenth session; ``measure.welch_df``);
- ``clustered_slope_1``: the same with slope 1, the plain excess over the reference (the
  judge's statistic until the eleventh pass);
- ``ancova_ref``: the excess regressed on the reference's gain (a per-sequence covariate);
- ``rank``: a Mann-Whitney z of own against control excesses;
- ``gain``: the unpaired gain (before - after) instead of the excess over the reference.

A null statistic should have SD 1 and 2% above 2.054; among those, the best separates honest
uploads furthest.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_incentives as bench  # noqa: E402
import incentive_sim as sim  # noqa: E402

from template.validator import measure  # noqa: E402

Z_BAR = 2.054
Z_PROOF = 2.326  # the judge's bar at its alpha 0.01 (since 2026-12-05)


def _recording(records: list[dict]):
    """A Measurer.measure that also keeps the raw per-sequence losses of each upload."""
    original = measure.Measurer.measure

    def measure_and_record(self, upload, near=(), boost=1):
        m = original(self, upload, near, boost)
        w = self._w
        _, own = measure.own_sequences(
            self.dataset, upload, self.own * boost, w.window, self.salt, w.shared
        )
        before = self.losses(own)
        with self.applied(upload.delta.sparse(), w.scale):
            after = self.losses(own)
        records.append({"uid": upload.uid, "m": m, "own_before": before, "own_after": after})
        return m

    return measure_and_record


def _pooled_z(a: torch.Tensor, b: torch.Tensor) -> float:
    n, m = a.numel(), b.numel()
    pooled = (float(((a - a.mean()) ** 2).sum()) + float(((b - b.mean()) ** 2).sum())) / (n + m - 2)
    return float(a.mean() - b.mean()) / math.sqrt(pooled * (1 / n + 1 / m))


def _ancova_z(y: torch.Tensor, group: torch.Tensor, covariate: torch.Tensor) -> float:
    """t of the group coefficient in y ~ 1 + group + covariate (read as a z: df > 60)."""
    x = torch.stack([torch.ones_like(y), group, covariate], dim=1)
    beta = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
    r = y - x @ beta
    s2 = float(r @ r) / (y.numel() - 3)
    cov = s2 * torch.linalg.inv(x.T @ x)
    return float(beta[1]) / math.sqrt(float(cov[1, 1]))


def _rank_z(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks = torch.cat([a, b]).argsort().argsort().double() + 1
    n, m = a.numel(), b.numel()
    u = float(ranks[:n].sum()) - n * (n + 1) / 2
    return (u - n * m / 2) / math.sqrt(n * m * (n + m + 1) / 12)


def _estimated_df_z(m: measure.Measurement) -> float:
    """``Measurement.fit_z`` as it was until the eighteenth session: the Welch degrees of
    freedom weighed by the clustered variances themselves (``measure.welch_df``)."""
    a, b = m.adjusted()
    if a.numel() < 2 or b.numel() < 2:
        return 0.0
    va, da = measure.clustered_var_of_mean(a, m.own_pages)
    vb, db = measure.clustered_var_of_mean(b, m.control_pages)
    if da < 1 or db < 1 or not va + vb > 0:
        return 0.0
    return measure.t_to_z(m.fit_excess / math.sqrt(va + vb), measure.welch_df(va, da, vb, db))


def statistics_of(rec: dict) -> dict[str, float]:
    m = rec["m"]
    oe, ce = m.own_excess, m.control_excess
    own_gain = rec["own_before"] - rec["own_after"]
    own_ref_gain = own_gain - oe  # before - after the reference
    ctrl_ref_gain = m.control_gain - ce
    y = torch.cat([oe, ce])
    group = torch.cat([torch.ones_like(oe), torch.zeros_like(ce)])
    out = {
        "iid": _pooled_z(oe, ce),
        "clustered": m.fit_z,
        "clustered_estimated_df": _estimated_df_z(m),
        "clustered_slope_1": dataclasses.replace(m, own_gain=None).fit_z,
        "ancova_ref": _ancova_z(y, group, torch.cat([own_ref_gain, ctrl_ref_gain])),
        "rank": _rank_z(oe, ce),
        "gain": _pooled_z(own_gain, m.control_gain),
    }
    return out


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "above_2.054": sum(v > Z_BAR for v in values) / len(values),
        "above_2.326": sum(v > Z_PROOF for v in values) / len(values),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--windows", type=int, default=16)
    p.add_argument("--honest", type=int, default=3)
    p.add_argument("--nulls", type=int, default=3, help="wrong-pages miners")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    p.add_argument(
        "--set",
        action="append",
        default=[],
        type=bench.hparam_override,
        metavar="KEY=VALUE",
        help="an hparams override of the preset, e.g. data.seqs_per_page=2 (repeatable)",
    )
    p.add_argument(
        "--first-window",
        type=int,
        default=None,
        help="the first window of every run (default 10 + 1000 x seed: seeds 2 and up start at "
        "the inner lr schedule's tail; 10 is its peak, where a new subnet starts)",
    )
    p.add_argument(
        "--classes",
        default=None,
        help="comma list of the other miners' classes instead of lazy + --nulls wrong-pages "
        "miners (e.g. bench_incentives.py's defaults, to see the statistics in a crowd of "
        "adversaries); every class is reported under its own name, wrong_pages as null",
    )
    bench.add_start_flag(p)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.first_window is not None and args.first_window < 0:
        p.error(f"--first-window {args.first_window}: must be >= 0")
    if args.classes is None:
        classes = ["lazy"] + ["wrong_pages"] * args.nulls
    else:
        classes = [c for c in args.classes.split(",") if c]
        unknown = sorted(set(classes) - set(sim.CLASSES))
        if unknown:
            p.error(f"--classes: unknown {', '.join(unknown)} (known: {', '.join(sim.CLASSES)})")
    torch.set_num_threads(1)
    records: list[dict] = []
    measure.Measurer.measure = _recording(records)
    kinds = ["honest"] * args.honest + classes
    per: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = sim.build_dataset(Path(tmp) / "dataset")
        base = bench.overridden(bench.preset(args.preset), args.set, p)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            hp = base if args.same_start else bench.run_start(base, seed)
            ds = sim.open_dataset(folder, hp)
            records.clear()
            run_dir = Path(tmp) / f"run{seed}"
            asyncio.run(
                bench.simulate(
                    hp,
                    ds,
                    run_dir,
                    seed,
                    args.windows,
                    args.honest,
                    classes,
                    first_window=args.first_window,
                )
            )
            for rec in records:
                kind = "null" if kinds[rec["uid"]] == "wrong_pages" else kinds[rec["uid"]]
                for name, z in statistics_of(rec).items():
                    per.setdefault(name, {}).setdefault(kind, []).append(z)
            print(f"seed {seed}: {len(records)} measured uploads", file=sys.stderr, flush=True)
    out = {
        "command": " ".join(sys.argv),
        "preset": args.preset,
        "overrides": dict(args.set),
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "windows": args.windows,
        "first_window": args.first_window,
        "same_start": args.same_start,
        "statistics": {
            name: {kind: summary(v) for kind, v in sorted(by.items())} for name, by in per.items()
        },
    }
    if args.json:
        print(json.dumps(out))
    else:
        for name, by in out["statistics"].items():
            print(name)
            for kind, s in by.items():
                print(
                    f"  {kind:7s} n {s['n']:4d}  mean {s['mean']:+.2f}  sd {s['sd']:.2f}  "
                    f"above 2.054 {s['above_2.054']:.3f}  above 2.326 {s['above_2.326']:.3f}"
                )


if __name__ == "__main__":
    main()
