"""Anti-cheat checks that need no model: copies, free-riders, replays and page claims.

Each function is pure (inputs in, verdicts out) so each can be tested on its own. Checks that
need a forward pass (the page proof and the sync check) are verdicts on an ``EvalResult``
and live here too, so every rule of docs/scoring.md is in one file.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from template.training.outer import sparse_norm
from template.training.pages import PageLayout
from template.training.wire import Upload


def content_digest(upload: Upload) -> str:
    """sha256 over every tensor's indices, value codes and codebook (not the header)."""
    h = hashlib.sha256()
    for name in sorted(upload.delta.tensors):
        t = upload.delta.tensors[name]
        h.update(name.encode())
        h.update(t.indices.cpu().numpy().tobytes())
        h.update(t.codes.cpu().numpy().tobytes())
        h.update(t.codebook.cpu().numpy().tobytes())
    return h.hexdigest()


def index_digest(upload: Upload) -> str:
    """sha256 over the index sets only: a replay with re-quantised values keeps it."""
    h = hashlib.sha256()
    for name in sorted(upload.delta.tensors):
        h.update(name.encode())
        h.update(upload.delta.tensors[name].indices.cpu().numpy().tobytes())
    return h.hexdigest()


def upload_norm(upload: Upload) -> float:
    return sparse_norm(upload.delta.sparse())


def overlap_and_similarity(a: Upload, b: Upload) -> tuple[float, float]:
    """(share of a's indices that b also sent, cosine of the values on the shared indices)."""
    shared = total = 0
    dot = na = nb = 0.0
    for name, ta in a.delta.tensors.items():
        tb = b.delta.tensors.get(name)
        total += ta.indices.numel()
        if tb is None:
            continue
        mask_a = torch.isin(ta.indices, tb.indices)
        mask_b = torch.isin(tb.indices, ta.indices)
        shared += int(mask_a.sum())
        va, vb = ta.values()[mask_a].double(), tb.values()[mask_b].double()
        dot += float((va * vb).sum())
        na += float((va * va).sum())
        nb += float((vb * vb).sum())
    overlap = shared / total if total else 0.0
    sim = dot / math.sqrt(na * nb) if na > 0 and nb > 0 else 0.0
    return overlap, sim


@dataclass(frozen=True)
class Submitted:
    """What the copy check needs of one upload."""

    uid: int
    last_modified: float
    digest: str
    upload: Upload


def find_copies(items: Sequence[Submitted], *, overlap: float, similarity: float) -> dict[int, str]:
    """uid -> reason for uploads that copy an earlier one of the same window.

    Two uploads are copies when their payloads are byte-identical, or when their top-k index
    sets overlap by ``overlap`` or more and their values on the shared indices have cosine
    similarity ``similarity`` or more. The LATER one by LastModified is penalised; when both
    carry the same LastModified the order cannot be told and both are penalised.
    """
    out: dict[int, str] = {}
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if a.digest == b.digest:
                why = "byte-identical payload"
            else:
                ov, sim = overlap_and_similarity(a.upload, b.upload)
                if ov < overlap or sim < similarity:
                    continue
                why = f"index overlap {ov:.2f}, value similarity {sim:.2f}"
            if a.last_modified < b.last_modified:
                out.setdefault(b.uid, f"copy of uid {a.uid} ({why})")
            elif b.last_modified < a.last_modified:
                out.setdefault(a.uid, f"copy of uid {b.uid} ({why})")
            else:
                out.setdefault(a.uid, f"copy of uid {b.uid}, same LastModified ({why})")
                out.setdefault(b.uid, f"copy of uid {a.uid}, same LastModified ({why})")
    return out


def free_riders(norms: Mapping[int, float], min_ratio: float) -> dict[int, str]:
    """uid -> reason for zero, non-finite or tiny deltas (below ``min_ratio`` x window median)."""
    out: dict[int, str] = {}
    finite = [n for n in norms.values() if math.isfinite(n) and n > 0]
    median = statistics.median(finite) if finite else 0.0
    for uid, n in norms.items():
        if not math.isfinite(n):
            out[uid] = "non-finite delta"
        elif n == 0:
            out[uid] = "zero delta"
        elif n < min_ratio * median:
            out[uid] = f"tiny delta (norm {n:.3g} < {min_ratio} x median {median:.3g})"
    return out


class ReplayMemory:
    """Digests of the uploads of recent windows: an upload seen before is a replay."""

    def __init__(self, windows: int, seen: Mapping[str, tuple[int, int]] | None = None):
        self.windows = windows
        self.seen: dict[str, tuple[int, int]] = dict(seen or {})  # digest -> (window, uid)

    def check(self, window: int, digests: Sequence[str]) -> str | None:
        for d in digests:
            hit = self.seen.get(d)
            if hit is not None and hit[0] < window:
                return f"replay of uid {hit[1]}'s upload of window {hit[0]}"
        return None

    def remember(self, window: int, uid: int, digests: Sequence[str]) -> None:
        for d in digests:
            self.seen.setdefault(d, (window, uid))
        self.seen = {d: wu for d, wu in self.seen.items() if wu[0] > window - self.windows}


def page_claim_error(upload: Upload, layout: PageLayout, window: int, uid: int) -> str | None:
    """None when every claimed page is in pages(window, uid, n), else why not."""
    claimed = upload.pages
    if not claimed:
        return "claims no pages"
    assigned = set(layout.pages(window, uid, len(claimed)))
    outside = [p for p in claimed if p not in assigned]
    if outside:
        return f"claims {len(outside)} page(s) outside its assignment (e.g. {outside[0]})"
    return None


def page_proof_ratio(assigned_gain: float, heldout_gain: float) -> float:
    """How much more the assigned pages improved than held-out pages, relative: a/h - 1.

    Only meaningful when ``heldout_gain > 0`` (``sync_error`` rules out the rest)."""
    return assigned_gain / heldout_gain - 1.0


def update_page_proof(previous: float | None, ratio: float, alpha: float = 0.5) -> float:
    """Moving average of the ratio: one window's sample is noisy, a habit is not."""
    ratio = max(-5.0, min(5.0, ratio)) if math.isfinite(ratio) else -5.0
    return ratio if previous is None else (1 - alpha) * previous + alpha * ratio


def page_proof_error(proof: float, margin: float) -> str | None:
    """The miner trained on its pages: on average they improve more than held-out pages by
    more than ``margin`` (relative)."""
    if not proof > margin:
        return (
            f"assigned pages improve only {proof:+.2f} (relative) more than held-out pages on "
            f"average, need > {margin}: did not train on its pages"
        )
    return None


def sync_error(
    heldout_gain: float, heldout_before: float = 1.0, tolerance: float = 0.0
) -> str | None:
    """Applied to the current global model the delta must not hurt: else stale or out of sync.

    A gain within ``tolerance`` (a share of the loss before) of zero is measurement noise on a
    few pages: such an upload is valid and simply earns nothing this window."""
    if not math.isfinite(heldout_gain):
        return "non-finite loss after applying the delta"
    if heldout_gain < -tolerance * abs(heldout_before):
        return f"raises the held-out loss ({heldout_gain:+.4f}): out of sync or harmful"
    return None
