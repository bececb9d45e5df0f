"""The outer step on shards, bit-identical to ``template.training.outer.sparse_outer_step``.

Every rank holds the same decoded peers (small: indices and 2-bit values); each adds, peer by
peer, the entries that fall into its own flat slice, divides by the total work share (the
number of peers when every peer claims a full window) and
subtracts ``lr *`` the mean from its shard: the same float operations per element, in the same
order, as the dense single-process step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from template.training.outer import SparseDelta, peer_factors

from .shard import flat_range


@torch.no_grad()
def apply_sparse_to_shards(
    shards: Sequence[Mapping[str, torch.Tensor]],
    peers: Sequence[SparseDelta],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    rank: int,
    world: int,
    lr: float,
    clip_to_median: bool = True,
    work: Sequence[float] | None = None,
) -> int:
    """Apply the clipped mean of ``peers`` (weighted by ``work``) to each name's local shard in
    every mapping of ``shards`` (e.g. the global copy and the live model); returns the number
    of peers."""
    if not peers:
        return 0
    scales, total = peer_factors(peers, work, clip_to_median)
    for name, shape in shapes.items():
        rng = flat_range(tuple(shape), rank, world)
        if rng.size == 0:
            continue
        targets = [s[name] for s in shards]
        acc = torch.zeros(rng.size, dtype=torch.float32, device=targets[0].device)
        for peer, scale in zip(peers, scales, strict=True):
            if name not in peer:
                continue
            idx, vals = peer[name]
            idx = idx.to(acc.device)
            mine = (idx >= rng.start) & (idx < rng.stop)
            scaled = vals.to(acc.device, torch.float32) * scale
            acc.index_add_(0, idx[mine] - rng.start, scaled[mine])
        mean = acc / total
        for t in targets:
            t.view(-1).sub_(mean.to(t.dtype), alpha=lr)
    return len(peers)
