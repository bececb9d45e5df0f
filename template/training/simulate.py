"""K miners in one process: DDP, DiLoCo, plain averaging and SparseLoCo at equal tokens.

Every method sees the same data: in outer step w, miner k trains on
``pages(w, k, pages_per_window)``; DDP takes the K miners' batches of each inner
step as one K-times-larger batch. ``avg`` is uncompressed averaging at the same H
(outer lr 1, no momentum): the gap ddp -> avg is the cost of local updates, the gap
avg -> sparseloco the cost of compression. SparseLoCo uploads go through the real wire
format (encode, sign, strict decode) every ``wire_every`` windows; the wire is lossless,
so the other windows use the compressed delta in memory and reuse the last measured size.
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
from .model import build_model, param_shapes
from .outer import (
    DilocoOuterOptimizer,
    SparseOuterState,
    aggregate_dense,
    aggregate_sparse,
    apply_delta,
    pseudo_gradient,
    snapshot,
)
from .overlap import LiveOverlap
from .pages import PageDataset, batches

logger = logging.getLogger(__name__)

METHODS = ("ddp", "diloco", "avg", "sparseloco")


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
    bytes_per_node_total: int = 0  # everything one miner sent over the run
    curve: list[dict] = field(default_factory=list)  # per eval: tokens, bytes_sent, val_loss

    def summary(self) -> dict:
        return {
            "val_loss": round(self.val_loss, 4),
            "ood_loss": None if self.ood_loss is None else round(self.ood_loss, 4),
            "tokens": self.tokens,
            "bytes_per_node_per_window": self.bytes_per_node_per_window,
            "bytes_per_node_total": self.bytes_per_node_total,
            "seconds": round(self.seconds, 1),
        }


def _miner_batches(ds: PageDataset, hp: HParams, window: int, uid: int) -> list[torch.Tensor]:
    seqs = ds.sequences(ds.layout.pages(window, uid, hp.pages_per_window))
    return batches(seqs, hp.train.batch_size, hp.train.inner_steps)


def _train_window(
    rep, opt, window_batches, hp: HParams, w: int, start, late, overlap, device
) -> dict[str, torch.Tensor]:
    """H inner steps of one miner from the global model ``start``; returns its delta.

    Without ``overlap`` (the synchronous schedule) the replica starts from ``start``. With it
    (the live schedule, ``template/miner/trainer.py``), ``late`` (the last outer step, already
    in ``start``) has not reached the miner yet: the replica starts as ``overlap`` says (carry
    on from its own weights, or restart from ``start + late``), receives ``late`` after half
    the steps, and the delta is what ``overlap.end`` counts (this window's training only)."""
    H = hp.train.inner_steps
    if overlap is None:
        with torch.no_grad():
            for name, p in rep.named_parameters():
                p.copy_(start[name])
        train_steps(rep, opt, window_batches, hp.train, start_step=w * H, device=device)
        return pseudo_gradient(start, rep)
    before = start if late is None else {n: t + late[n] for n, t in start.items()}
    overlap.begin(before, rep)
    half = H if late is None else H // 2
    train_steps(rep, opt, window_batches[:half], hp.train, start_step=w * H, device=device)
    if late is not None:
        apply_delta(rep, late, 1.0)
        overlap.rebase(rep)
        rest = window_batches[half:]
        train_steps(rep, opt, rest, hp.train, start_step=w * H + half, device=device)
    return overlap.end(start, rep)


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
    wire_every: int = 1,
    sparse_momentum: float = 0.0,
    delayed_outer: bool = False,
    carry_ahead: bool = True,
    device: str = "cpu",
) -> SimResult:
    """Run ``outer_steps`` windows of ``method`` with ``miners`` workers; evaluate along the way.

    ``encode_upload(compressed_delta, window, uid) -> bytes`` and its inverse are supplied by the
    wire layer for SparseLoCo (see ``wire_roundtrip``); without it the compressed delta is used
    in memory and its byte size is not known (reported as 0). With ``wire_every = n`` only
    windows ``0, n, 2n, ...`` take the wire round trip (it is lossless; the others reuse the
    last measured size). ``sparse_momentum`` (a simulation lever, not what the network runs)
    puts outer Nesterov momentum on the sparse aggregate. ``delayed_outer`` runs the live
    miner's schedule: window w's training starts without window w-1's aggregate, which
    arrives after half the inner steps (``template/miner/sync.py``); ``carry_ahead`` chooses
    what the miner trains from until then (``template/training/overlap.py``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if delayed_outer and method != "sparseloco":
        raise ValueError("delayed_outer models the network's sparse outer step only")
    t0 = time.perf_counter()
    H, B, K = hp.train.inner_steps, hp.train.batch_size, miners
    model = build_model(hp.model, device)
    n_params = sum(p.numel() for p in model.parameters())
    curve: list[dict] = []
    tokens_per_window = K * H * B * hp.model.seq_len
    bytes_per_window = 0
    bytes_total = 0

    def record(window: int) -> None:
        loss = evaluate_loss(model, evals.val, device=device)
        curve.append(
            {
                "window": window,
                "tokens": window * tokens_per_window,
                "bytes_sent": bytes_total,
                "val_loss": round(loss, 4),
            }
        )
        logger.info("%s window %d val_loss %.4f", method, window, loss)

    record(0)
    if method == "ddp":
        opt = make_optimizer(model, hp.train)
        bytes_per_window = H * n_params * 4  # a dense fp32 all-reduce per inner step
        for w in range(outer_steps):
            bytes_total += bytes_per_window
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
        sparse_outer = SparseOuterState(hp.outer.lr, sparse_momentum)
        shapes = param_shapes(model)
        last_step: dict[str, torch.Tensor] | None = None  # the aggregate a delayed miner lacks
        overlaps = [LiveOverlap(carry_ahead) if delayed_outer else None for _ in range(K)]
        for w in range(outer_steps):
            start = snapshot(model)
            dense, sparse, sizes = [], [], []
            for k, (rep, opt) in enumerate(zip(replicas, inner_opts, strict=True)):
                batches_k = _miner_batches(ds, hp, w, k)
                delta = _train_window(
                    rep, opt, batches_k, hp, w, start, last_step, overlaps[k], device
                )
                if method in ("diloco", "avg"):
                    dense.append(delta)
                    sizes.append(n_params * 4)
                else:
                    cd = compressors[k].compress(delta)
                    if encode_upload is not None and w % wire_every == 0:
                        cd, size = encode_upload(cd, w, k)
                        sizes.append(size)
                    sparse.append(cd.sparse())
            bytes_per_window = max(sizes) if sizes else bytes_per_window
            bytes_total += bytes_per_window
            if method == "diloco":
                outer.step(aggregate_dense(dense))
            elif method == "avg":
                apply_delta(model, aggregate_dense(dense), 1.0)
            else:
                agg = aggregate_sparse(
                    sparse, shapes, clip_to_median=hp.outer.clip_to_median, device=device
                )
                step = sparse_outer.update(agg)
                apply_delta(model, step, 1.0)
                last_step = step if delayed_outer else None
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
        bytes_total,
        curve,
    )
