"""Pages: the unit of data the protocol assigns.

The token stream is cut into pages of ``seqs_per_page`` sequences of ``seq_len + 1``
tokens. The last ``heldout_fraction`` of pages is the held-out range: never assigned,
used by validators to measure real improvement. ``pages(window, uid, count)`` is a
pure function of its arguments and the run seed, so every node computes the same
assignment without talking.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from template.hparams import HParams

from .shards import DatasetError, TokenStream


def _hash_u64(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def draw_distinct(n: int, count: int, *seed_parts: object) -> list[int]:
    """``count`` distinct integers in [0, n), drawn by counter-mode sha256 (stable across versions)."""
    if count > n:
        raise ValueError(f"cannot draw {count} distinct pages from {n}")
    out: list[int] = []
    seen: set[int] = set()
    i = 0
    while len(out) < count:
        v = _hash_u64(*seed_parts, i) % n
        i += 1
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


@dataclass(frozen=True)
class PageLayout:
    """How many pages exist and which are assignable."""

    num_pages: int
    num_heldout: int
    seed: int

    @property
    def num_train(self) -> int:
        return self.num_pages - self.num_heldout

    @property
    def heldout_range(self) -> range:
        return range(self.num_train, self.num_pages)

    def pages(self, window: int, uid: int, count: int) -> list[int]:
        """The training pages of (window, uid); never in the held-out range."""
        return draw_distinct(self.num_train, count, "train", self.seed, window, uid)

    def heldout_pages(self, window: int, count: int) -> list[int]:
        """A per-window sample of held-out pages (the same for every validator)."""
        count = min(count, self.num_heldout)
        picks = draw_distinct(self.num_heldout, count, "heldout", self.seed, window)
        return [self.num_train + p for p in picks]

    def is_heldout(self, page: int) -> bool:
        return self.num_train <= page < self.num_pages


class PageDataset:
    """Reads pages from a token stream as [seqs, seq_len + 1] tensors."""

    def __init__(self, stream: TokenStream, hp: HParams):
        self.stream = stream
        self.seq_len = hp.model.seq_len
        self.seqs_per_page = hp.data.seqs_per_page
        self.page_tokens = hp.page_tokens
        if stream.manifest.vocab_size > hp.model.vocab_size:
            raise DatasetError(
                f"dataset vocab_size {stream.manifest.vocab_size} exceeds the model's "
                f"{hp.model.vocab_size}; prepare it with the run's tokenizer"
            )
        if stream.manifest.tokenizer != hp.data.tokenizer:
            raise DatasetError(
                f"dataset made with tokenizer {stream.manifest.tokenizer!r}, but the run's "
                f"hparams pin data.tokenizer = {hp.data.tokenizer!r}; use the owner's dataset"
            )
        num_pages = len(stream) // self.page_tokens
        num_heldout = max(1, int(num_pages * hp.data.heldout_fraction))
        if num_pages - num_heldout < 1:
            raise DatasetError(f"dataset too small: {len(stream)} tokens make {num_pages} pages")
        self.layout = PageLayout(num_pages, num_heldout, hp.data.seed)

    def page(self, page_id: int) -> torch.Tensor:
        if not 0 <= page_id < self.layout.num_pages:
            raise IndexError(f"page {page_id} outside 0..{self.layout.num_pages - 1}")
        tokens = self.stream.read(page_id * self.page_tokens, self.page_tokens)
        return torch.from_numpy(tokens.reshape(self.seqs_per_page, self.seq_len + 1))

    def sequences(self, page_ids: list[int]) -> torch.Tensor:
        """All sequences of the given pages, in page order: [len(page_ids) * seqs_per_page, seq_len + 1]."""
        if not page_ids:
            return torch.empty(0, self.seq_len + 1, dtype=torch.long)
        return torch.cat([self.page(p) for p in page_ids])


def batches(sequences: torch.Tensor, batch_size: int, steps: int) -> list[torch.Tensor]:
    """Cut sequences into ``steps`` batches of ``batch_size`` (cycling if there are too few)."""
    n = sequences.shape[0]
    if n == 0:
        raise ValueError("no sequences to batch")
    idx = np.arange(steps * batch_size) % n
    return [
        sequences[torch.from_numpy(idx[i * batch_size : (i + 1) * batch_size])]
        for i in range(steps)
    ]
