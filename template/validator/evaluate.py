"""The status figure: the global model's loss on a fixed held-out sample (the same every window).

Uploads are measured in ``measure.py``; this is only the number the status file, the metrics
and ``scripts/bench_incentives.py`` report. ``measured_heldout_loss`` takes it through a
measurer's ``losses``, so a multi-GPU validator computes it on its sharded model too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from template.training.inner import evaluate_loss
from template.training.pages import PageDataset


def fixed_heldout_sequences(dataset: PageDataset, pages: int) -> torch.Tensor:
    """The sequences of the first ``pages`` held-out pages of the fixed (window -1) sample."""
    return dataset.sequences(dataset.layout.heldout_pages(-1, pages))


def fixed_heldout_loss(
    model: torch.nn.Module, dataset: PageDataset, pages: int, device="cpu"
) -> float:
    """Loss of ``model`` on the fixed held-out sample."""
    seqs = fixed_heldout_sequences(dataset, pages)
    return evaluate_loss(model, seqs, device=device, batch_size=64)


def measured_heldout_loss(
    losses: Callable[[torch.Tensor], torch.Tensor], dataset: PageDataset, pages: int
) -> float:
    """The same figure from per-sequence ``losses`` (``Measurer.losses``): their mean, as the
    sequences are of equal length."""
    got = losses(fixed_heldout_sequences(dataset, pages))
    return float(got.mean()) if got.numel() else float("nan")
