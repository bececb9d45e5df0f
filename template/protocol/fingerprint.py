"""Model fingerprints: a small summary every node can compare to check it holds the global model.

For each parameter (by name): the float64 sum, the float64 sum of squares, and values at
``SAMPLES`` fixed pseudo-random positions. A missed or extra aggregate changes sampled
values with near certainty (an aggregate touches a few percent of every chunk), while the
comparison tolerates the last-bit differences between CPU and GPU arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch

SAMPLES = 16
RTOL = 1e-5
ATOL = 1e-7


def _positions(name: str, numel: int) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, numel, (min(SAMPLES, numel),), generator=g)


@torch.no_grad()
def model_fingerprint(model: torch.nn.Module) -> list[float]:
    out: list[float] = []
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        flat = p.detach().reshape(-1)
        d = flat.double()
        out.append(float(d.sum()))
        out.append(float((d * d).sum()))
        out.extend(
            float(v) for v in flat[_positions(name, flat.numel()).to(flat.device)].double().cpu()
        )
    return out


def fingerprints_match(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two fingerprints agree within the documented tolerance."""
    if len(a) != len(b):
        return False
    return all(
        math.isfinite(x) and math.isfinite(y) and abs(x - y) <= ATOL + RTOL * max(abs(x), abs(y))
        for x, y in zip(a, b, strict=True)
    )
