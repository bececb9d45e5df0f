#!/usr/bin/env python
"""Benchmark a local subnet run; prints ONE JSON object.

python scripts/bench_localnet.py --json                    # 2 miners, 1 validator, 8 windows
python scripts/bench_localnet.py --miners 4 --windows 10 --block-time 1.0 --json

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--miners", type=int, default=2)
    p.add_argument("--validators", type=int, default=1)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--block-time", type=float, default=0.5)
    p.add_argument("--hparams", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per neuron")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--run-dir", default=None, help="default: a temporary folder")
    p.add_argument("--json", action="store_true", help="(the output is always one JSON object)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_dir = Path(a.run_dir) if a.run_dir else Path(tempfile.mkdtemp(prefix="bench-localnet-"))
    cfg = LocalnetConfig(
        miners=a.miners,
        validators=a.validators,
        windows=a.windows,
        hparams=a.hparams,
        block_time=a.block_time,
        device=a.device,
        threads_per_node=a.threads,
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
    print(json.dumps(out))
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
