"""The outer step from decoded uploads weighs each peer by the share of a window it claims."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from template.hparams import hparams_hash, load_hparams
from template.protocol.aggregation import apply_uploads, clip_factors, upload_work
from template.training.compression import CompressedDelta, Compressor
from template.training.model import build_model, param_shapes
from template.training.outer import sparse_norm, sparse_outer_step
from template.training.wire import SPEC_VERSION, Upload

HP = load_hparams("tiny")


def make_upload(uid: int, pages: int, seed: int) -> Upload:
    gen = torch.Generator().manual_seed(seed)
    shapes = param_shapes(build_model(HP.model))
    delta = {n: torch.randn(s, generator=gen) * 0.01 for n, s in shapes.items()}
    return Upload(
        window=0,
        uid=uid,
        hotkey=f"hk{uid}",
        spec_version=SPEC_VERSION,
        hparams_hash=hparams_hash(HP),
        golomb_m=0,
        delta=Compressor(HP.compression).compress(delta),
        pages=tuple(range(100 * uid, 100 * uid + pages)),
    )


def test_upload_work_is_the_claimed_share_of_a_window():
    ppw = HP.pages_per_window
    assert ppw >= 4
    assert upload_work(make_upload(1, ppw, 0), HP) == 1.0
    assert upload_work(make_upload(1, ppw // 4, 0), HP) == (ppw // 4) / ppw
    assert upload_work(make_upload(1, 0, 0), HP) == 0.0


def test_apply_uploads_weighs_peers_by_their_claimed_work():
    ppw = HP.pages_per_window
    full, part = make_upload(1, ppw, 1), make_upload(2, ppw // 4, 2)
    torch.manual_seed(0)
    model = build_model(HP.model)
    weighted, plain = build_model(HP.model), build_model(HP.model)
    weighted.load_state_dict(model.state_dict())
    plain.load_state_dict(model.state_dict())
    assert apply_uploads(model, [full, part], HP) == 2
    deltas = [full.delta.sparse(), part.delta.sparse()]
    sparse_outer_step(weighted, deltas, lr=HP.outer.lr, work=[1.0, (ppw // 4) / ppw])
    sparse_outer_step(plain, deltas, lr=HP.outer.lr)
    for (n, p), q in zip(model.named_parameters(), weighted.parameters(), strict=True):
        assert torch.equal(p, q), n
    pairs = zip(model.parameters(), plain.parameters(), strict=True)
    assert any(not torch.equal(p, r) for p, r in pairs)  # the plain mean differs


def inflated(up: Upload, factor: float) -> Upload:
    """``up`` with every value times ``factor`` (its codebooks scaled)."""
    tensors = {
        n: type(t)(t.shape, t.indices, t.codes, t.codebook * factor)
        for n, t in up.delta.tensors.items()
    }
    return dataclasses.replace(up, delta=CompressedDelta(tensors))


def test_clip_factors_bring_an_inflated_upload_to_the_median_norm():
    ups = {u: make_upload(u, 4, u) for u in (1, 2, 3)}
    ups[4] = inflated(make_upload(4, 4, 4), 4.0)
    f = clip_factors(ups, HP)
    norms = {u: sparse_norm(up.delta.sparse()) for u, up in ups.items()}
    median = sorted(norms.values())[1:3]
    median = (median[0] + median[1]) / 2  # four uploads: the mean of the middle two
    assert f[4] * norms[4] == pytest.approx(median)  # the outer step's clip, as measured
    assert 0.2 < f[4] < 0.3
    assert all(f[u] <= 1.0 for u in ups) and sum(f[u] == 1.0 for u in (1, 2, 3)) >= 2
    off = HP.replace(**{"outer.clip_to_median": False})
    assert clip_factors(ups, off) == {u: 1.0 for u in ups}
    assert clip_factors({}, HP) == {}


def test_clip_factors_take_the_median_over_the_peers_given():
    """Uploads that will not be peers (small noise here) must not pull the bar down: the
    outer step clips to its peers' median only."""
    ups = {u: make_upload(u, 4, u) for u in (1, 2, 3)}
    ups |= {u: inflated(make_upload(u, 4, u), 0.1) for u in (4, 5, 6, 7)}
    everyone = clip_factors(ups, HP)
    assert all(everyone[u] < 0.5 for u in (1, 2, 3))  # the small ones set the median
    peers = clip_factors(ups, HP, peers=(1, 2, 3, 99))  # 99 sent nothing this window
    norms = {u: sparse_norm(up.delta.sparse()) for u, up in ups.items()}
    top = max((1, 2, 3), key=norms.get)
    assert peers[top] * norms[top] == pytest.approx(sorted(norms[u] for u in (1, 2, 3))[1])
    assert all(peers[u] == 1.0 for u in ups if u != top)
    assert clip_factors(ups, HP, peers=(99,)) == everyone  # no peer here: all of them
