"""K miners in one process: DDP, dense DiLoCo and SparseLoCo compared at equal tokens.

Every method sees the same data: in outer step w, miner k trains on
``pages(w, k, pages_per_window)``; DDP takes the K miners' batches of each inner
step as one K-times-larger batch. SparseLoCo uploads go through the real wire
format (encode, sign, strict decode), so ``bytes_per_node_per_window`` is what a
miner would upload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from template.hparams import HParams

from .compression import Compressor
from .inner import evaluate_loss, make_optimizer, train_steps
from .model import build_model
from .outer import (
    DilocoOuterOptimizer,
    aggregate_dense,
    aggregate_sparse,
    apply_delta,
    pseudo_gradient,
    snapshot,
)
from .pages import PageDataset, batches

logger = logging.getLogger(__name__)

METHODS = ("ddp", "diloco", "sparseloco")


@dataclass(frozen=True)
class EvalSets:
    val: torch.Tensor  # in-domain held-out sequences
    ood: torch.Tensor | None = None  # out-of-domain sequences


@dataclass
class SimResult:
    method: str
    val_loss: float
    ood_loss: float | None
    tokens: int
    bytes_per_node_per_window: int
    seconds: float
    curve: list[dict] = field(default_factory=list)  # per eval: tokens, bytes_sent, val_loss

    def summary(self) -> dict:
        return {
            "val_loss": round(self.val_loss, 4),
            "ood_loss": None if self.ood_loss is None else round(self.ood_loss, 4),
            "tokens": self.tokens,
            "bytes_per_node_per_window": self.bytes_per_node_per_window,
            "seconds": round(self.seconds, 1),
        }


def _miner_batches(ds: PageDataset, hp: HParams, window: int, uid: int) -> list[torch.Tensor]:
    seqs = ds.sequences(ds.layout.pages(window, uid, hp.pages_per_window))
    return batches(seqs, hp.train.batch_size, hp.train.inner_steps)


def simulate(
    method: str,
    hp: HParams,
    ds: PageDataset,
    evals: EvalSets,
    *,
    miners: int,
    outer_steps: int,
    eval_every: int = 5,
    encode_upload: Callable | None = None,
    device: str = "cpu",
) -> SimResult:
    """Run ``outer_steps`` windows of ``method`` with ``miners`` workers; evaluate along the way.

    ``encode_upload(compressed_delta, window, uid) -> bytes`` and its inverse are supplied by the
    wire layer for SparseLoCo (see ``wire_roundtrip``); without it the compressed delta is used
    in memory and its byte size is not known (reported as 0).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    t0 = time.perf_counter()
    H, B, K = hp.train.inner_steps, hp.train.batch_size, miners
    model = build_model(hp.model, device)
    n_params = sum(p.numel() for p in model.parameters())
    curve: list[dict] = []
    tokens_per_window = K * H * B * hp.model.seq_len
    bytes_per_window = 0

    def record(window: int) -> None:
        loss = evaluate_loss(model, evals.val, device=device)
        curve.append(
            {
                "window": window,
                "tokens": window * tokens_per_window,
                "bytes_sent": window * bytes_per_window,
                "val_loss": round(loss, 4),
            }
        )
        logger.info("%s window %d val_loss %.4f", method, window, loss)

    record(0)
    if method == "ddp":
        opt = make_optimizer(model, hp.train)
        bytes_per_window = H * n_params * 4  # a dense fp32 all-reduce per inner step
        for w in range(outer_steps):
            per_miner = [_miner_batches(ds, hp, w, k) for k in range(K)]
            big = [torch.cat([per_miner[k][s] for k in range(K)]) for s in range(H)]
            train_steps(
                model, opt, big, hp.train, start_step=w * H, device=device, micro_batch_size=B
            )
            if (w + 1) % eval_every == 0 or w + 1 == outer_steps:
                record(w + 1)
    else:
        replicas = [build_model(hp.model, device) for _ in range(K)]
        inner_opts = [make_optimizer(r, hp.train) for r in replicas]
        compressors = [Compressor(hp.compression) for _ in range(K)]
        outer = DilocoOuterOptimizer(model, hp.outer.diloco_lr, hp.outer.diloco_momentum)
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        for w in range(outer_steps):
            start = snapshot(model)
            dense, sparse, sizes = [], [], []
            for k, (rep, opt) in enumerate(zip(replicas, inner_opts, strict=True)):
                rep.load_state_dict(model.state_dict())
                train_steps(
                    rep,
                    opt,
                    _miner_batches(ds, hp, w, k),
                    hp.train,
                    start_step=w * H,
                    device=device,
                )
                delta = pseudo_gradient(start, rep)
                if method == "diloco":
                    dense.append(delta)
                    sizes.append(n_params * 4)
                else:
                    cd = compressors[k].compress(delta)
                    if encode_upload is not None:
                        cd, size = encode_upload(cd, w, k)
                        sizes.append(size)
                    sparse.append(cd.sparse())
            bytes_per_window = max(sizes) if sizes else 0
            if method == "diloco":
                outer.step(aggregate_dense(dense))
            else:
                agg = aggregate_sparse(
                    sparse, shapes, clip_to_median=hp.outer.clip_to_median, device=device
                )
                apply_delta(model, agg, hp.outer.lr)
            if (w + 1) % eval_every == 0 or w + 1 == outer_steps:
                record(w + 1)
    val = curve[-1]["val_loss"]
    ood = evaluate_loss(model, evals.ood, device=device) if evals.ood is not None else None
    return SimResult(
        method,
        val,
        ood,
        outer_steps * tokens_per_window,
        bytes_per_window,
        time.perf_counter() - t0,
        curve,
    )
