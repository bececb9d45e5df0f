"""Throughput of a sharded miner on CUDA: tokens/s, MFU, peak memory per rank, and the time
compression + encoding + signing take (the part of a window that is not training).

Run by ``scripts/bench_fsdp.py`` when CUDA is present (one process per GPU, NCCL). Random
tokens stand in for pages: throughput does not depend on the text. Never run in CI.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from template.hparams import load_hparams
from template.signing import dev_keypair
from template.training.inner import make_optimizer, train_steps
from template.training.model import build_model
from template.training.wire import encode_upload

from .compress import ShardedCompressor
from .config import ParallelConfig
from .dist import close_distributed, init_distributed, leave_spawned_rank
from .launch import rank_env
from .shard import local, shard_model

# Dense bf16 peak FLOP/s per GPU (vendor datasheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


@dataclass(frozen=True)
class PerfPlan:
    preset: str
    world: int
    steps: int = 10  # timed steps (after 2 warm-up steps)
    micro_batch_size: int = 0  # 0: the whole per-rank share at once
    activation_checkpointing: bool = False


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def flops_per_token(cfg, params: int) -> float:
    """6 N for the matmuls plus the attention scores (12 L d s), forward + backward."""
    return 6.0 * params + 12.0 * cfg.num_layers * cfg.hidden_size * cfg.seq_len


def perf_worker(rank: int, plan: PerfPlan, port: int, out: str) -> None:
    os.environ.update(rank_env(rank, plan.world, port))  # what torchrun sets
    ctx = init_distributed("cuda")
    try:
        hp = load_hparams(plan.preset)
        model = build_model(hp.model, "cpu")
        params = sum(p.numel() for p in model.parameters())
        cfg = ParallelConfig(activation_checkpointing=plan.activation_checkpointing)
        model = shard_model(model.to(ctx.device), ctx, cfg)
        start = {n: local(p).detach().clone() for n, p in model.named_parameters()}
        opt = make_optimizer(model, hp.train)  # the miner's own AdamW
        b = hp.train.batch_size // ctx.world
        g = torch.Generator(device=ctx.device).manual_seed(rank)
        seqs = torch.randint(
            0, hp.model.vocab_size, (b, hp.model.seq_len + 1), generator=g, device=ctx.device
        )
        micro = plan.micro_batch_size or None
        for i in range(2):
            train_steps(
                model,
                opt,
                [seqs],
                hp.train,
                start_step=i,
                device=ctx.device,
                micro_batch_size=micro,
            )
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train_steps(
            model,
            opt,
            [seqs] * plan.steps,
            hp.train,
            start_step=2,
            device=ctx.device,
            micro_batch_size=micro,
        )
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = torch.tensor([torch.cuda.max_memory_allocated()], device=ctx.device)
        peaks = [torch.zeros_like(peak) for _ in range(ctx.world)]
        dist.all_gather(peaks, peak)
        t1 = time.perf_counter()
        delta = {
            n: (start[n] - local(p).detach().float()).reshape(-1)
            for n, p in model.named_parameters()
        }
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        comp = ShardedCompressor(hp.compression, ctx).compress(delta, shapes)
        blob = b""
        if ctx.is_main:
            blob = encode_upload(
                comp,
                window=0,
                uid=0,
                hparams_hash="perf",
                config=hp.compression,
                key=dev_keypair("//Alice"),
            )
        torch.cuda.synchronize()
        comp_seconds = time.perf_counter() - t1
        if ctx.is_main:
            tokens = plan.steps * hp.train.batch_size * hp.model.seq_len
            tps = tokens / seconds
            peak_f = peak_flops(torch.cuda.get_device_name(ctx.device))
            mfu = tps * flops_per_token(hp.model, params) / (peak_f * ctx.world) if peak_f else None
            step_s = seconds / plan.steps
            result = asdict(plan) | {
                "device": torch.cuda.get_device_name(ctx.device),
                "params": params,
                "tokens_per_s": round(tps, 1),
                "mfu": None if mfu is None else round(mfu, 4),
                "step_seconds": round(step_s, 4),
                "peak_memory_gib_per_rank": [round(int(p) / 2**30, 3) for p in peaks],
                "compress_encode_sign_seconds": round(comp_seconds, 3),
                "upload_bytes": len(blob),
                "compress_share_of_window": round(
                    comp_seconds / (comp_seconds + step_s * hp.train.inner_steps), 4
                ),
            }
            with open(out, "w") as f:
                json.dump(result, f)
    finally:
        close_distributed()
    leave_spawned_rank()
