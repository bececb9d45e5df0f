#!/usr/bin/env python
"""Benchmark a local subnet run; prints ONE JSON object.

python scripts/bench_localnet.py --json                    # 2 miners, 1 validator, 8 windows
python scripts/bench_localnet.py --miners 4 --windows 10 --block-time 0.5 --json
python scripts/bench_localnet.py --windows 24 --sim --json  # live loss curve beside the simulation

With ``--sim`` the same K, H and windows are then simulated in one process on the run's own
dataset (``template.training.simulate`` with the live miner's one-window-delayed outer step)
and evaluated on the validator's fixed held-out sample, so ``live_curve`` and ``sim_curve``
compare at equal tokens; miners stop at H steps per window (``--miner-steps``) so both
train the same tokens.

Figures (from the nodes' status files, sampled once per window, and the chain):
windows_per_hour (leader validator's completed windows over the time between the first and the
last), miner_utilization (training seconds over wall seconds, mean over miners),
miner_seconds_per_upload (the training seconds that produced one upload: each miner's
train_seconds_total / uploads_done, mean over miners), miner_put_seconds_per_upload (the PUT of
the signed blob to the miner's bucket), validator_seconds_per_upload (the validator's eval_seconds_per_upload),
bytes_per_window (all miners' upload bytes in one window), seconds_to_first_weights (from the
command's start to the first weights row on chain, set-up included). Means skip the first,
partial window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.hparams import load_hparams  # noqa: E402
from template.localnet.config import LocalnetConfig  # noqa: E402
from template.localnet.run import Run  # noqa: E402


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def figures(summary: dict) -> dict:
    """The benchmark's figures from a local subnet summary (skipping the first, partial window)."""
    wins = summary.get("windows") or []
    steady = wins[1:] if len(wins) > 2 else wins
    per_hour = None
    if len(wins) >= 2 and wins[-1]["seconds"] > wins[0]["seconds"]:
        per_hour = 3600 * (len(wins) - 1) / (wins[-1]["seconds"] - wins[0]["seconds"])
    miners = [n for n in summary.get("nodes", []) if n["role"] == "miner"]
    util = _mean([n.get("utilization") for n in miners])
    put_s = _mean([v for r in steady for v in r["miner_upload_seconds"].values()])
    train_per_upload = _mean(
        [n["train_seconds_total"] / n["uploads_done"] for n in miners if n.get("uploads_done")]
    )
    bytes_w = _mean(
        [sum(v for v in r["miner_upload_bytes"].values() if v is not None) for r in steady]
    )
    return {
        "windows_per_hour": per_hour,
        "miner_utilization": util,
        "miner_seconds_per_upload": train_per_upload,
        "miner_put_seconds_per_upload": put_s,
        "validator_seconds_per_upload": _mean([r["eval_seconds_per_upload"] for r in steady]),
        "bytes_per_window": bytes_w,
        "seconds_to_first_weights": summary.get("seconds_to_first_weights"),
        "seconds_setup": summary.get("seconds_setup"),
        "windows_completed": summary.get("windows_completed"),
        "loss_start": summary.get("loss_start"),
        "loss_end": summary.get("loss_end"),
        "uploads_missing": summary.get("uploads_missing"),
        "in_sync": summary.get("in_sync"),
        "ok": summary.get("ok"),
    }


def live_curve(summary: dict) -> list[dict]:
    """(windows since the first, held-out loss, miners' training loss) per completed window."""
    wins = [w for w in summary.get("windows") or [] if w.get("heldout_loss") is not None]
    if not wins:
        return []
    first = wins[0]["window"]
    return [
        {
            "windows": w["window"] - first,
            "val_loss": w["heldout_loss"],
            "miner_loss": w.get("miner_loss"),
        }
        for w in wins
    ]


def sim_curve(run_dir: Path, hparams: str, miners: int, windows: int, pages: int) -> list[dict]:
    """SparseLoCo simulated with the live K, H, windows and held-out sample (validator status)."""
    from template.training.pages import PageDataset
    from template.training.shards import TokenStream
    from template.training.simulate import EvalSets, simulate

    hp = load_hparams(hparams)
    ds = PageDataset(TokenStream(run_dir / "dataset"), hp)
    val = ds.sequences(ds.layout.heldout_pages(-1, pages))
    r = simulate(
        "sparseloco",
        hp,
        ds,
        EvalSets(val),
        miners=miners,
        outer_steps=windows,
        eval_every=1,
        delayed_outer=True,
    )
    return [{"windows": c["window"], "val_loss": c["val_loss"]} for c in r.curve]


def compare(live: list[dict], sim: list[dict]) -> dict:
    """Live against simulated held-out loss after the same number of windows."""
    by_w = {c["windows"]: c["val_loss"] for c in sim}
    pairs = [
        (c["windows"], c["val_loss"], by_w[c["windows"]]) for c in live if c["windows"] in by_w
    ]
    if not pairs:
        return {}
    w, lv, sv = pairs[-1]
    return {
        "windows": w,
        "live_val_loss": lv,
        "sim_val_loss": sv,
        "live_over_sim": round(lv / sv - 1, 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--miners", type=int, default=2)
    p.add_argument("--validators", type=int, default=1)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument(
        "--block-time",
        type=float,
        default=LocalnetConfig().block_time,
        help="seconds per block (default: the local subnet's)",
    )
    p.add_argument("--hparams", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per neuron")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--run-dir", default=None, help="default: a temporary folder")
    p.add_argument("--sim", action="store_true", help="simulate the same run beside it")
    p.add_argument(
        "--miner-steps",
        type=int,
        default=None,
        help="inner steps per window (default: H; 0: until the window ends)",
    )
    p.add_argument("--status-pages", type=int, default=4, help="validator's fixed held-out pages")
    p.add_argument("--json", action="store_true", help="(the output is always one JSON object)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_dir = Path(a.run_dir) if a.run_dir else Path(tempfile.mkdtemp(prefix="bench-localnet-"))
    steps = load_hparams(a.hparams).train.inner_steps if a.miner_steps is None else a.miner_steps
    cfg = LocalnetConfig(
        miners=a.miners,
        validators=a.validators,
        windows=a.windows,
        hparams=a.hparams,
        block_time=a.block_time,
        device=a.device,
        threads_per_node=a.threads,
        miner_args=("--miner.max-steps", str(steps)) if steps else (),
        timeout=a.timeout,
        run_dir=run_dir.resolve(),
    )
    t = time.time()
    summary = asyncio.run(Run(cfg, sys.stderr).main())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    out = {
        **figures(summary),
        "miners": a.miners,
        "validators": a.validators,
        "block_time": a.block_time,
        "hparams": a.hparams,
        "device": a.device,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d", time.gmtime(t)),
        "wall_seconds": summary.get("wall_seconds"),
        "run_dir": str(run_dir),
    }
    if a.sim:
        live = live_curve(summary)
        windows = max((c["windows"] for c in live), default=0)
        sim = sim_curve(run_dir, a.hparams, a.miners, windows, a.status_pages) if windows else []
        out.update(
            miner_steps=steps, live_curve=live, sim_curve=sim, live_vs_sim=compare(live, sim)
        )
    print(json.dumps(out))
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
