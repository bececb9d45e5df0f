"""The inner loop: H AdamW steps with warmup + cosine, clipping and gradient accumulation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from template.hparams import TrainConfig

from .model import autocast


@dataclass(frozen=True)
class InnerStats:
    steps: int
    tokens: int
    loss_first: float
    loss_last: float
    loss_mean: float
    seconds: float  # wall time spent in training steps

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``cfg.lr``, then cosine decay to ``cfg.lr * cfg.min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8)


def sequence_loss(model: torch.nn.Module, seqs: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy over [batch, seq_len + 1] token sequences."""
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train_steps(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[torch.Tensor],
    cfg: TrainConfig,
    *,
    start_step: int,
    device: str | torch.device = "cpu",
    micro_batch_size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> InnerStats:
    """Run one optimizer step per batch; ``start_step`` positions the lr schedule.

    ``should_stop`` is polled between steps (SIGTERM handling): the steps done so far count.
    """
    model.train()
    losses: list[float] = []
    tokens = 0
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        if should_stop is not None and should_stop():
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(start_step + i, cfg)
        batch = batch.to(device, non_blocking=True)
        micro = micro_batch_size or batch.shape[0]
        parts = torch.split(batch, micro)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for part in parts:
            with autocast(device):
                loss = sequence_loss(model, part) * (part.shape[0] / batch.shape[0])
            loss.backward()
            total += loss.item()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(total)
        tokens += batch.shape[0] * (batch.shape[1] - 1)
    seconds = time.perf_counter() - t0
    if not losses:
        return InnerStats(0, 0, math.nan, math.nan, math.nan, seconds)
    return InnerStats(
        len(losses), tokens, losses[0], losses[-1], sum(losses) / len(losses), seconds
    )


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    sequences: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> float:
    """Mean loss over sequences (equal-length, so the mean of batch means weighted by size)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for part in torch.split(sequences, batch_size):
        with autocast(device):
            loss = sequence_loss(model, part.to(device))
        total += loss.item() * part.shape[0]
        count += part.shape[0]
    model.train(was_training)
    return total / max(count, 1)
