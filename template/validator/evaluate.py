"""Loss before and after applying one upload to the window's global model.

The delta is applied in place on the touched indices only (theta[idx] -= scale * v) and
the exact original values are written back afterwards, so evaluating N uploads costs N
sparse writes and 2 forward passes over the assigned sample plus 1 over the held-out
sample (whose "before" loss is shared by every upload of the window).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import torch

from template.hparams import HParams
from template.training.inner import evaluate_loss
from template.training.pages import PageDataset
from template.training.wire import Upload


@dataclass(frozen=True)
class EvalResult:
    assigned_before: float
    assigned_after: float
    heldout_before: float
    heldout_after: float
    pages: tuple[int, ...]  # the claimed pages that were evaluated

    @property
    def assigned_gain(self) -> float:
        return self.assigned_before - self.assigned_after

    @property
    def heldout_gain(self) -> float:
        return self.heldout_before - self.heldout_after


def sample_claimed(
    pages: tuple[int, ...], count: int, window: int, uid: int, salt: str
) -> list[int]:
    """``count`` of the claimed pages, chosen by a seed the miner cannot know in advance."""
    seed = hashlib.sha256(f"{salt}|{window}|{uid}".encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "little"))
    return sorted(rng.sample(list(pages), min(count, len(pages))))


class Evaluator:
    """Measures uploads against ``model`` (the current global model, left unchanged)."""

    def __init__(
        self,
        model: torch.nn.Module,
        dataset: PageDataset,
        hp: HParams,
        *,
        assigned_pages: int,
        heldout_pages: int,
        lr_scale: float,
        salt: str,
        device: str = "cpu",
    ):
        self.model = model
        self.dataset = dataset
        self.hp = hp
        self.assigned_pages = assigned_pages
        self.heldout_pages = heldout_pages
        self.lr_scale = lr_scale
        self.scale = lr_scale * hp.outer.lr
        self.salt = salt
        self.device = device
        self._heldout: tuple[int, torch.Tensor, float] | None = None

    def _loss(self, seqs: torch.Tensor) -> float:
        return evaluate_loss(self.model, seqs, device=self.device, batch_size=64)

    def heldout(self, window: int) -> tuple[torch.Tensor, float]:
        """The window's held-out sample and the current model's loss on it (cached per window).

        Call ``forget`` after the model changes."""
        if self._heldout is None or self._heldout[0] != window:
            seqs = self.dataset.sequences(
                self.dataset.layout.heldout_pages(window, self.heldout_pages)
            )
            self._heldout = (window, seqs, self._loss(seqs))
        return self._heldout[1], self._heldout[2]

    def set_upload_count(self, uploads: int) -> None:
        """Weigh each upload as the outer step would: lr / n, n = this window's uploads (<= G).

        A single upload applied at the full outer lr overshoots (the outer step averages the
        peers), which makes honest deltas look harmful."""
        n = max(1, min(uploads, self.hp.window.peers_per_window))
        self.scale = self.lr_scale * self.hp.outer.lr / n

    def forget(self) -> None:
        self._heldout = None

    @torch.no_grad()
    def evaluate(self, upload: Upload, window: int) -> EvalResult:
        held, held_before = self.heldout(window)
        pages = sample_claimed(upload.pages, self.assigned_pages, window, upload.uid, self.salt)
        own = self.dataset.sequences(pages)
        own_before = self._loss(own)
        params = dict(self.model.named_parameters())
        saved = []
        try:
            for name, t in upload.delta.tensors.items():
                flat = params[name].data.view(-1)
                idx = t.indices.to(flat.device)
                saved.append((flat, idx, flat[idx].clone()))
                flat[idx] -= self.scale * t.values().to(flat.device, flat.dtype)
            own_after = self._loss(own)
            held_after = self._loss(held)
        finally:
            for flat, idx, orig in saved:
                flat[idx] = orig
        return EvalResult(own_before, own_after, held_before, held_after, tuple(pages))


def fixed_heldout_loss(
    model: torch.nn.Module, dataset: PageDataset, pages: int, device="cpu"
) -> float:
    """Loss of ``model`` on a fixed held-out sample (the same every window): the status number."""
    seqs = dataset.sequences(dataset.layout.heldout_pages(-1, pages))
    return evaluate_loss(model, seqs, device=device, batch_size=64)
