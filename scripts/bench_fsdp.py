"""Sharded (FSDP2) miner versus one process, and sharded throughput on GPUs.

Always: the CPU equivalence check (gloo, ``--ranks`` processes, the tiny preset): the same
pages and seed once in one process and once sharded; prints whether the pseudo-gradients agree,
whether the uploads decode to the same indices and codes, the largest difference, and how far
the torchrun validator's measurements (``ShardedMeasurer``) are from ``Measurer``'s
(``eval_max_abs_diff``, ``measure_restores``).
With CUDA (not run on the 2-core CPU machines of this project): for each preset of
``--presets``, tokens/s, MFU, peak memory per rank and the compression + encoding + signing
time over ``torch.cuda.device_count()`` GPUs (or ``--gpus``).

    .venv/bin/python scripts/bench_fsdp.py --json
    .venv/bin/python scripts/bench_fsdp.py --json --presets 150m,1b --gpus 8
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from template.hparams import load_hparams  # noqa: E402
from template.parallel.dist import free_port  # noqa: E402
from template.parallel.equivalence import Plan, compare, run_sharded, run_single  # noqa: E402
from template.parallel.memory import cuda_plan  # noqa: E402
from template.parallel.perf import PerfPlan, perf_worker  # noqa: E402


def write_dataset(folder: Path, chars: int = 400_000) -> Path:
    """A byte-level dataset from shared/data (or, without it, Python's own sources)."""
    from template.training.shards import write_shards
    from template.training.tokenizer import ByteTokenizer

    text_file = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
    if text_file.is_file():
        text = text_file.read_text(encoding="utf-8")[:chars]
    else:
        import inspect
        import json as _json

        text = "\n".join(inspect.getsource(m) for m in (_json, inspect))[:chars]
    tok = ByteTokenizer()
    docs = [tok.encode(text[i : i + 50_000]) + [tok.eot_id] for i in range(0, len(text), 50_000)]
    write_shards(docs, folder, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=150_000)
    return folder


def equivalence(args: argparse.Namespace, tmp: Path) -> dict:
    plan = Plan("tiny", str(write_dataset(tmp / "dataset")), steps=args.steps, world=args.ranks)
    t0 = time.perf_counter()
    single = run_single(plan)
    sharded = run_sharded(plan, tmp / "rank0.safetensors", single)
    out = {"ranks": args.ranks, "backend": "gloo", "preset": "tiny", "steps": args.steps}
    out |= compare(single, sharded, plan.hparams())
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def gpu_perf(args: argparse.Namespace, tmp: Path) -> list[dict]:
    gpus = args.gpus or torch.cuda.device_count()
    results = []
    for preset in args.presets.split(","):
        micro, ckpt = cuda_plan(
            load_hparams(preset), gpus, args.micro_batch, args.activation_checkpointing
        )
        plan = PerfPlan(
            preset, gpus, steps=args.gpu_steps, micro_batch_size=micro,
            activation_checkpointing=ckpt,
        )  # fmt: skip
        out = tmp / f"perf-{preset}.json"
        mp.start_processes(
            perf_worker, args=(plan, free_port(), str(out)), nprocs=gpus, start_method="spawn"
        )
        results.append(json.loads(out.read_text()))
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--ranks", type=int, default=2, help="CPU ranks of the equivalence check")
    p.add_argument("--steps", type=int, default=2, help="inner steps per window (equivalence)")
    p.add_argument("--presets", default="150m,1b", help="GPU throughput presets")
    p.add_argument("--gpus", type=int, default=0, help="GPUs to use (0: all visible)")
    p.add_argument("--gpu-steps", type=int, default=10, help="timed steps per preset")
    p.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        help="micro-batch per rank (0: the largest that memory.py says fits)",
    )
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--skip-equivalence", action="store_true", help="GPU figures only")
    args = p.parse_args()
    result: dict = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_equivalence:
            result |= equivalence(args, tmp)
        if torch.cuda.is_available():
            result["gpu"] = gpu_perf(args, tmp)
        else:
            result["gpu"] = "not run: no CUDA device (tokens/s, MFU, peak memory need a GPU)"
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for k, v in sorted(result.items()):
            print(f"{k:>22}: {v}")
    return 0 if result.get("equivalent", True) else 1


if __name__ == "__main__":
    sys.exit(main())
