"""The outer step: turn the selected peers' deltas into the next global model.

SparseLoCo: each peer sends a sparse pseudo-gradient (flat indices + values per
tensor). Peers are clipped to the median peer norm, averaged (a mean over peers,
with zeros where a peer sent nothing, so overlapping indices add up and are divided
by the number of peers), and applied as ``theta -= lr * mean``. When the peers' shares
of a window's work differ (a peer that trained a quarter of the pages), the mean is
weighted by them, as FedAvg weighs clients by their samples (``peer_factors``). The
same inputs in the same order give bit-identical results: each peer is accumulated
with one ``index_add_`` whose indices are unique.

Dense DiLoCo (outer Nesterov SGD on the averaged dense delta) stays as a baseline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import torch

from .model import param_shapes

# name -> (flat int64 indices, float values)
SparseDelta = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def sparse_norm(delta: SparseDelta) -> float:
    """L2 norm of a sparse delta (indices within a tensor are unique)."""
    total = 0.0
    for _, values in delta.values():
        total += float(values.double().pow(2).sum())
    return math.sqrt(total)


def clip_scales(
    norms: Sequence[float], clip_to_median: bool = True, reference: Sequence[float] = ()
) -> list[float]:
    """Per-peer factors that bring every norm down to at most the median norm (of
    ``reference`` when given, else of ``norms``)."""
    if not norms or not clip_to_median:
        return [1.0] * len(norms)
    median = statistics.median(reference or norms)
    return [1.0 if n <= median or n == 0 else median / n for n in norms]


def peer_factors(
    peers: Sequence[SparseDelta],
    work: Sequence[float] | None = None,
    clip_to_median: bool = True,
) -> tuple[list[float], float]:
    """Each peer's factor (its clip scale times its work share) and the divisor of the
    weighted mean (the total work). Without ``work``, or when all of it is 0: equal weights,
    and the divisor is the number of peers (so full shares give the plain mean, bit for bit)."""
    scales = clip_scales([sparse_norm(p) for p in peers], clip_to_median)
    shares = [1.0] * len(peers)
    if work is not None:
        if len(work) != len(peers):
            raise ValueError(f"{len(work)} work shares for {len(peers)} peers")
        clamped = [max(0.0, min(1.0, float(w))) if math.isfinite(w) else 0.0 for w in work]
        if sum(clamped) > 0:
            shares = clamped
    return [s * w for s, w in zip(scales, shares, strict=True)], float(sum(shares))


def aggregate_sparse(
    peers: Sequence[SparseDelta],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    clip_to_median: bool = True,
    device: str | torch.device = "cpu",
    work: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Mean of the peers' (clipped) sparse deltas as dense tensors, by parameter name,
    weighted by ``work`` (each peer's share of a window's work; default equal)."""
    if not peers:
        return {}
    scales, total = peer_factors(peers, work, clip_to_median)
    out: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        acc = torch.zeros(math.prod(shape), dtype=torch.float32, device=device)
        for peer, scale in zip(peers, scales, strict=True):
            if name not in peer:
                continue
            idx, vals = peer[name]
            acc.index_add_(0, idx.to(device), vals.to(device, torch.float32) * scale)
        out[name] = (acc / total).view(shape)
    return out


def aggregate_dense(
    peers: Sequence[Mapping[str, torch.Tensor]], *, clip_to_median: bool = False
) -> dict[str, torch.Tensor]:
    """Mean of dense deltas (optionally clipped to the median norm), by parameter name."""
    if not peers:
        return {}
    norms = [math.sqrt(sum(float(t.double().pow(2).sum()) for t in p.values())) for p in peers]
    scales = clip_scales(norms, clip_to_median)
    names = list(peers[0].keys())
    return {
        name: sum(p[name].float() * s for p, s in zip(peers, scales, strict=True)) / len(peers)
        for name in names
    }


@torch.no_grad()
def apply_delta(model: torch.nn.Module, delta: Mapping[str, torch.Tensor], lr: float) -> None:
    """theta <- theta - lr * delta, for every parameter named in ``delta``."""
    params = dict(model.named_parameters())
    unknown = set(delta) - set(params)
    if unknown:
        raise KeyError(f"delta names unknown parameters: {sorted(unknown)[:3]}")
    for name, d in delta.items():
        params[name].sub_(d.to(params[name].device, params[name].dtype), alpha=lr)


class DilocoOuterOptimizer:
    """Dense DiLoCo: the averaged delta is an outer gradient for Nesterov SGD."""

    def __init__(self, model: torch.nn.Module, lr: float = 0.7, momentum: float = 0.9):
        self.model = model
        self.opt = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0
        )

    @torch.no_grad()
    def step(self, delta: Mapping[str, torch.Tensor]) -> None:
        for name, p in self.model.named_parameters():
            p.grad = delta[name].to(p.device, p.dtype).clone()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)


class SparseOuterState:
    """The sparse outer step as a step to subtract: ``lr * agg``, or with Nesterov momentum
    ``m`` (buffer ``b <- m b + agg``) ``lr * (agg + m b)``. Momentum 0 keeps no state."""

    def __init__(self, lr: float, momentum: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.lr, self.momentum = lr, momentum
        self.buffer: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, agg: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.momentum == 0.0:
            return {name: d * self.lr for name, d in agg.items()}
        out = {}
        for name, d in agg.items():
            b = self.buffer.get(name)
            b = d.clone() if b is None else b.mul_(self.momentum).add_(d)
            self.buffer[name] = b
            out[name] = (d + self.momentum * b) * self.lr
        return out


def pseudo_gradient(
    start: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """delta = theta_start - theta_end, in fp32."""
    return {
        name: (start[name].float() - p.detach().float()) for name, p in model.named_parameters()
    }


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached fp32 copy of the parameters (theta_start)."""
    return {name: p.detach().float().clone() for name, p in model.named_parameters()}


def sparse_outer_step(
    model: torch.nn.Module,
    peers: Sequence[SparseDelta],
    *,
    lr: float,
    clip_to_median: bool = True,
    work: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """The network's outer step: clip, average (weighted by ``work``) and apply the peers'
    sparse deltas in order."""
    device = next(model.parameters()).device
    agg = aggregate_sparse(
        peers, param_shapes(model), clip_to_median=clip_to_median, device=device, work=work
    )
    if agg:
        apply_delta(model, agg, lr)
    return agg
