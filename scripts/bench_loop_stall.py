"""How long a validator's window work holds its event loop (where the upload watcher polls).

Runs the incentive benchmark's one-process subnet (``bench_incentives.Run``: real
``Validator.run_window``, in-memory chain and buckets) and, during each ``run_window``, a task
on the same loop that wakes every ``--tick`` seconds. A wake-up that comes late by s seconds
means the loop was held for s seconds: the watcher could not poll then. Miners' training is
outside ``run_window`` and not counted.

    python scripts/bench_loop_stall.py --preset small --honest 6 --windows 4 --json

Prints one JSON object: per window the longest hold and the window's seconds, and their
summary. Figures: docs/benchmarks.md ("The validator's event loop during a window").

``--thread-cost PAIRS`` instead times what the worker thread costs: the validator's
per-sequence losses of 64 random sequences on the preset's model (``--work train``: four
training steps on them, as a miner's training thread runs), on the main thread and in a
worker thread (``training.offload.in_worker``), alternating, PAIRS times each.
``--arena own`` leaves glibc's per-thread arenas as they are (``asyncio.to_thread`` without
``share_main_arena``): the cost before the worker shared the main arena.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_incentives as bench  # noqa: E402
import incentive_sim as sim  # noqa: E402


class LoopHold:
    """The longest time the event loop was held while ``watch`` ran (a ticker's lateness)."""

    def __init__(self, tick: float):
        self.tick = tick
        self.longest = 0.0
        self.held_over = 0.0  # seconds in holds longer than the watcher's fastest round (0.2 s)

    async def _ticker(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.tick)
            late = time.perf_counter() - t0 - self.tick
            self.longest = max(self.longest, late)
            if late > 0.2:
                self.held_over += late

    async def watch(self, work):
        task = asyncio.ensure_future(self._ticker())
        await asyncio.sleep(0)  # the ticker's first wake-up is armed
        try:
            return await work
        finally:
            task.cancel()


async def measure(args: argparse.Namespace, tmp: Path) -> dict:
    hp = sim.preset(args.preset)
    folder = sim.build_dataset(tmp / "dataset", corpus=args.corpus)
    ds = sim.open_dataset(folder, hp)
    classes = [c for c in args.classes.split(",") if c]
    run = bench.Run(hp, ds, tmp, args.seed, args.honest, classes)
    real = run.v.run_window
    rows = []

    async def timed(w: int):
        hold = LoopHold(args.tick)
        t0 = time.perf_counter()
        report = await hold.watch(real(w))
        rows.append(
            {
                "window": w,
                "uploads": report.seen,
                "evaluated": len(report.evaluated),
                "seconds": round(time.perf_counter() - t0, 3),
                "longest_hold_s": round(hold.longest, 3),
                "held_over_0.2s_s": round(hold.held_over, 3),
            }
        )
        return report

    run.v.run_window = timed
    first = 10 + 1000 * args.seed
    for w in range(first, first + args.windows):
        await run.window(w)
    measured = rows[1:] or rows  # the first window also builds the caches
    return {
        "preset": args.preset,
        "honest": args.honest,
        "classes": classes,
        "seed": args.seed,
        "tick_s": args.tick,
        "windows": rows,
        "longest_hold_s": max(r["longest_hold_s"] for r in measured),
        "mean_longest_hold_s": statistics.mean(r["longest_hold_s"] for r in measured),
        "mean_window_seconds": statistics.mean(r["seconds"] for r in measured),
        "summary_skips_first_window": len(rows) > 1,
    }


async def thread_cost(args: argparse.Namespace) -> dict:
    import torch

    from template.training.model import build_model
    from template.training.offload import in_worker, share_main_arena
    from template.validator.measure import sequence_losses

    hp = sim.preset(args.preset)
    torch.manual_seed(args.seed)
    model = build_model(hp.model)
    seqs = torch.randint(0, hp.model.vocab_size, (64, hp.model.seq_len + 1))

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def losses() -> float:
        t0 = time.perf_counter()
        if args.work == "train":  # a miner's inner steps: forward, backward, optimizer step
            for batch in seqs.split(16):
                opt.zero_grad()
                model(input_ids=batch, labels=batch).loss.backward()
                opt.step()
        else:
            sequence_losses(model, seqs)
        return time.perf_counter() - t0

    if args.arena == "shared":
        share_main_arena()
        worker = in_worker
    else:
        worker = asyncio.to_thread
    main_s, worker_s = [], []
    for i in range(args.thread_cost):
        if i % 2:  # alternate which goes first
            main_s.append(losses())
            worker_s.append(await worker(losses))
        else:
            worker_s.append(await worker(losses))
            main_s.append(losses())
    ratios = [w / m - 1 for w, m in zip(worker_s, main_s, strict=True)]
    return {
        "preset": args.preset,
        "arena": args.arena,
        "work": args.work,
        "pairs": args.thread_cost,
        "main_median_s": statistics.median(main_s),
        "worker_median_s": statistics.median(worker_s),
        "worker_over_main_median": statistics.median(ratios),
        "worker_over_main_mean_sd": [statistics.mean(ratios), statistics.pstdev(ratios)],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=("tiny", "small"))
    p.add_argument("--honest", type=int, default=6, help="honest miners (uploads per window)")
    p.add_argument("--classes", default="", help="adversary classes (bench_incentives names)")
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tick", type=float, default=0.01, help="the ticker's period, seconds")
    p.add_argument("--corpus", default=str(sim.CORPUS), help="a UTF-8 text file, or stdlib")
    p.add_argument("--thread-cost", type=int, default=0, metavar="PAIRS", help="see above")
    p.add_argument("--arena", default="shared", choices=("shared", "own"))
    p.add_argument("--work", default="losses", choices=("losses", "train"), help="what is timed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.windows < 1 or args.honest < 1 or args.thread_cost < 0:
        p.error("--windows and --honest must be at least 1, --thread-cost at least 0")
    if args.thread_cost:
        out = asyncio.run(thread_cost(args))
        print(json.dumps(out))
        return out
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(measure(args, Path(tmp)))
    if args.json:
        print(json.dumps(out))
    else:
        for r in out["windows"]:
            print(r)
        print({k: v for k, v in out.items() if k != "windows"})
    return out


if __name__ == "__main__":
    main()
