"""One sharded miner window and one sharded validator evaluation, timed: the GPU check's core.

Each rank (one per GPU, or ``--ranks`` gloo processes on CPU) trains one window of the preset
on random tokens through ``ShardedTrainer``; rank 0 then encodes and signs the upload, checks
that it decodes, and rank 0 measures it as the validator does (``ShardedMeasurer`` through
``measure_each``, the validator's default own/control sequence counts; every rank computes).
Prints one JSON object: window seconds, tokens/s, compression + encoding + signing seconds and
their share of the window (target < 2%), measurement seconds, peak memory per rank.

    .venv/bin/python scripts/gpu_window.py --preset 150m --device cuda       # all GPUs
    .venv/bin/python scripts/gpu_window.py --preset tiny --device cpu --ranks 2 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402


def write_random_dataset(folder: Path, vocab: int, tokens: int, tokenizer: str) -> None:
    from template.training.shards import write_shards

    g = torch.Generator().manual_seed(0)
    docs = [
        torch.randint(0, vocab - 1, (tokens // 8,), generator=g).tolist() + [vocab - 1]
        for _ in range(8)
    ]
    write_shards(docs, folder, vocab_size=vocab, tokenizer=tokenizer, shard_tokens=1 << 22)


def worker(rank: int, args: argparse.Namespace, world: int, port: int, out: str) -> None:
    from template.parallel.launch import rank_env

    os.environ.update(rank_env(rank, world, port))
    from template.hparams import hparams_hash, load_hparams
    from template.parallel.config import ParallelConfig
    from template.parallel.dist import close_distributed, init_distributed, leave_spawned_rank
    from template.parallel.evaluate import ShardedMeasurer
    from template.parallel.memory import cuda_plan
    from template.parallel.trainer import ShardedTrainer
    from template.signing import dev_keypair
    from template.training.model import build_model
    from template.training.pages import PageDataset
    from template.training.shards import TokenStream
    from template.training.wire import decode_upload, encode_upload, upload_size_cap
    from template.validator.args import ValidatorConfig
    from template.validator.measure import collect_measurements, measure_each

    ctx = init_distributed(args.device)
    cuda = ctx.device.type == "cuda"
    try:
        hp = load_hparams(args.preset)
        ds = PageDataset(TokenStream(Path(args.dataset)), hp)
        micro, ckpt = args.micro_batch, args.activation_checkpointing
        if cuda:
            micro, ckpt = cuda_plan(hp, world, micro, ckpt)
        cfg = ParallelConfig(activation_checkpointing=ckpt)
        trainer = ShardedTrainer(
            hp,
            build_model(hp.model),
            ds,
            1,
            ctx,
            parallel=cfg,
            max_steps=args.steps or hp.train.inner_steps,
            micro_batch_size=micro or None,
        )
        upload = None
        if not ctx.is_main:
            trainer.follow()
        else:
            t0 = time.perf_counter()
            res = trainer.train_window(3, lambda: False)
            window_s = time.perf_counter() - t0
            key = dev_keypair("//Alice")
            t1 = time.perf_counter()
            blob = encode_upload(
                res.compressed,
                window=3,
                uid=1,
                hparams_hash=hparams_hash(hp),
                config=hp.compression,
                key=key,
                pages=res.pages,
                steps=res.steps,
            )
            encode_s = time.perf_counter() - t1
            upload = decode_upload(
                blob,
                max_bytes=upload_size_cap(trainer.shapes, hp.compression),
                expected={"window": 3, "uid": 1},
                param_shapes=trainer.shapes,
                config=hp.compression,
            )
            trainer.shutdown()
        trainer._do_reset()  # every rank: live weights <- global (the validator's model)
        vcfg = ValidatorConfig()
        measurer = ShardedMeasurer(
            trainer.model,
            ds if ctx.is_main else None,
            ctx,
            own=vcfg.eval_own_seqs,
            control=vcfg.eval_control_seqs,
            salt="gpu-check",
            control_pool=vcfg.eval_control_pool,
        )
        if ctx.is_main:
            if cuda:
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            each = measure_each(measurer, 3, {1: upload}, [1], hp.outer.lr, {})
            got, failed, _ = collect_measurements(each)
            eval_s = time.perf_counter() - t2
            measurer.shutdown()
        else:
            measurer.follow()
        peak = torch.tensor([torch.cuda.max_memory_allocated() if cuda else 0], device=ctx.device)
        peaks = [torch.zeros_like(peak) for _ in range(world)]
        dist.all_gather(peaks, peak)
        if ctx.is_main:
            compress_s = trainer.compress_seconds
            doc = {
                "preset": args.preset,
                "ranks": world,
                "backend": ctx.backend,
                "device": torch.cuda.get_device_name(ctx.device) if cuda else "cpu",
                "steps": res.steps,
                "window_seconds": round(window_s, 3),
                "train_seconds": round(res.train_seconds, 3),
                "tokens_per_s": round(res.tokens / res.train_seconds, 1),
                "compress_seconds": round(compress_s, 4),
                "encode_sign_seconds": round(encode_s, 4),
                "upload_bytes": len(blob),
                "compress_encode_sign_share": round((compress_s + encode_s) / window_s, 5),
                "eval_seconds": round(eval_s, 3),
                "eval_failed": failed,
                "own_seqs": vcfg.eval_own_seqs,
                "control_seqs": vcfg.eval_control_seqs,
                "control_gain": got[1].control_mean if 1 in got else None,
                "fit_excess": got[1].fit_excess if 1 in got else None,
                "peak_memory_gib_per_rank": [round(int(p) / 2**30, 3) for p in peaks],
            }
            doc["under_2_percent"] = doc["compress_encode_sign_share"] < 0.02
            Path(out).write_text(json.dumps(doc))
    finally:
        close_distributed()
    leave_spawned_rank()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="150m")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--ranks", type=int, default=0, help="processes (0: every visible GPU)")
    p.add_argument("--steps", type=int, default=0, help="inner steps (0: the preset's H)")
    p.add_argument("--micro-batch", type=int, default=0)
    p.add_argument("--activation-checkpointing", action="store_true")
    args = p.parse_args()
    from template.hparams import load_hparams
    from template.parallel.dist import free_port

    world = args.ranks or (torch.cuda.device_count() if args.device == "cuda" else 2)
    hp = load_hparams(args.preset)
    with tempfile.TemporaryDirectory() as d:
        args.dataset = str(Path(d) / "dataset")
        need = (
            4 * hp.train.batch_size * (hp.model.seq_len + 1) * max(args.steps, hp.train.inner_steps)
        )
        write_random_dataset(Path(args.dataset), hp.model.vocab_size, need, hp.data.tokenizer)
        out = Path(d) / "result.json"
        mp.start_processes(
            worker, args=(args, world, free_port(), str(out)), nprocs=world, start_method="spawn"
        )
        print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
