#!/usr/bin/env python
"""A local subnet under faults: kill -9 and restart of a miner, a validator, the dev chain and
S3, mid-window; S3 and the chain paused (SIGSTOP/SIGCONT). Prints ONE JSON object with --json.

    python scripts/chaos_localnet.py --json                       # 24 windows, 7 faults
    python scripts/chaos_localnet.py --windows 6 --plan kill:miner-1,kill:validator-0 --json

ok is true when: the run reached --windows; every planned fault was injected; no node exited
in a way the chaos did not cause; every node wrote an in-sync status within 2 windows of each
fault (a killed node: of its restart); no restarted node refused its saved state; and
honest_penalised is 0 (no honest upload rejected, none missing or late outside a fault's window
and the next or while its own miner was down: template/localnet/penalties.py). See
docs/localnet.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.hparams import load_hparams  # noqa: E402
from template.localnet.chaos import FULL_PLAN, ChaosConfig, Fault, inject, judge  # noqa: E402
from template.localnet.config import LocalnetConfig  # noqa: E402
from template.localnet.run import Run  # noqa: E402
from template.localnet.supervisor import RestartPolicy  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--windows", type=int, default=24, help="leader windows to run (default 24)")
    p.add_argument("--plan", default=",".join(FULL_PLAN), help="comma list of kind:node faults")
    p.add_argument("--spacing", type=int, default=3, help="windows between faults (default 3)")
    p.add_argument("--pause", type=float, default=8.0, help="seconds a pause lasts (default 8)")
    p.add_argument("--miners", type=int, default=2)
    p.add_argument("--validators", type=int, default=1)
    p.add_argument("--hparams", default="tiny")
    p.add_argument("--run.dir", dest="run_dir", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p.parse_args(argv)


async def chaos_run(args: argparse.Namespace) -> dict:
    run_dir = args.run_dir or Path("runs").resolve() / time.strftime(
        "chaos-%Y%m%d-%H%M%S", time.gmtime()
    )
    plan = [Fault.parse(x) for x in args.plan.split(",") if x]
    bpw = load_hparams(args.hparams).window.blocks_per_window
    cfg = LocalnetConfig(
        miners=args.miners,
        validators=args.validators,
        windows=args.windows,
        hparams=args.hparams,
        run_dir=run_dir,
        timeout=120 + args.windows * bpw * LocalnetConfig().block_time * 4,
    )
    chaos = ChaosConfig(plan, spacing=args.spacing, pause_s=args.pause, blocks_per_window=bpw)
    run = Run(cfg, sys.stderr, RestartPolicy(backoff_base_s=1.0, backoff_max_s=8.0))
    injector = asyncio.ensure_future(inject(run, chaos))
    summary = await run.main()
    if not injector.done():
        injector.cancel()
    (err,) = await asyncio.gather(injector, return_exceptions=True)
    if isinstance(err, asyncio.CancelledError):
        err = None
    out = judge(run, summary, chaos)
    if err is not None:
        out["ok"], out["chaos_error"] = False, repr(err)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = asyncio.run(chaos_run(args))
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
