"""Shard arithmetic and the outer step on shards, checked in one process (no process group)."""

from __future__ import annotations

import math

import pytest
import torch

from template.parallel.apply import apply_sparse_to_shards
from template.parallel.compress import chunk_aligned
from template.parallel.shard import flat_range
from template.training.outer import sparse_outer_step


@pytest.mark.parametrize("shape", [(7, 5), (3,), (257, 128), (1, 9), (5, 4, 2)])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_flat_ranges_tile_the_tensor_like_torch_chunk(shape, world):
    numel = math.prod(shape)
    ranges = [flat_range(shape, r, world) for r in range(world)]
    assert ranges[0].start == 0 and ranges[-1].stop == numel
    for a, b in zip(ranges, ranges[1:], strict=False):
        assert a.stop == b.start
    rows = torch.arange(numel).view(shape).chunk(world, dim=0)
    sizes = [c.numel() for c in rows] + [0] * (world - len(rows))
    assert [r.size for r in ranges] == sizes


def test_chunk_alignment():
    assert chunk_aligned((4096, 2), 4096, 2)  # 2048 rows x 2 = one chunk per rank
    assert not chunk_aligned((257, 128), 4096, 2)  # 129 rows x 128 is not a chunk multiple
    assert chunk_aligned((257, 128), 4096, 1)


@pytest.mark.parametrize("work", [None, [1.0, 0.25, 0.5]])
def test_outer_step_on_shards_is_bit_identical(work):
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 9), torch.nn.Linear(9, 4))
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    peers = []
    for _ in range(3):
        peer = {}
        for name, shape in shapes.items():
            n = math.prod(shape)
            idx = torch.randperm(n, generator=g)[: max(1, n // 3)].sort().values
            peer[name] = (idx, torch.randn(idx.numel(), generator=g))
        peers.append(peer)
    world = 3
    shards = []
    for r in range(world):
        shards.append(
            {
                n: p.detach()
                .reshape(-1)[flat_range(shapes[n], r, world).start :][
                    : flat_range(shapes[n], r, world).size
                ]
                .clone()
                for n, p in model.named_parameters()
            }
        )
    for r in range(world):
        apply_sparse_to_shards([shards[r]], peers, shapes, rank=r, world=world, lr=0.7, work=work)
    sparse_outer_step(model, peers, lr=0.7, work=work)
    for n, p in model.named_parameters():
        joined = torch.cat([shards[r][n] for r in range(world)])
        assert torch.equal(joined, p.detach().reshape(-1)), n
