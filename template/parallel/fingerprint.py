"""``template.protocol.fingerprint.model_fingerprint`` of a model held in shards.

Per parameter (sorted by name): the float64 sum and sum of squares all-reduced over ranks, and
the values at the same sampled flat positions, each taken from the rank that holds it. Sums
add in another order than on one process: well inside the fingerprint's tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from template.protocol.fingerprint import _positions as sample_positions  # same positions

from .dist import DistContext
from .shard import flat_range


@torch.no_grad()
def sharded_fingerprint(
    shards: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]], ctx: DistContext
) -> list[float]:
    parts = []
    for name in sorted(shapes):
        rng = flat_range(tuple(shapes[name]), ctx.rank, ctx.world)
        flat = shards[name].reshape(-1).double()
        pos = sample_positions(name, rng.numel).to(flat.device)
        mine = (pos >= rng.start) & (pos < rng.stop)
        picked = torch.zeros(pos.numel(), dtype=torch.float64, device=flat.device)
        picked[mine] = flat[pos[mine] - rng.start]
        sums = torch.stack([flat.sum(), (flat * flat).sum()])
        parts.append(torch.cat([sums, picked]))
    joined = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    dist.all_reduce(joined)
    return [float(v) for v in joined.cpu()]
