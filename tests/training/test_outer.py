import pytest
import torch

from template.training.outer import (
    DilocoOuterOptimizer,
    aggregate_dense,
    aggregate_sparse,
    apply_delta,
    clip_scales,
    peer_factors,
    sparse_norm,
)


def sp(idx, vals):
    return torch.tensor(idx, dtype=torch.long), torch.tensor(vals, dtype=torch.float32)


def test_sparse_mean_with_overlap_by_hand():
    shapes = {"w": (2, 3)}
    a = {"w": sp([0, 4], [3.0, 4.0])}  # norm 5
    b = {"w": sp([0, 5], [1.0, 2.0])}  # norm sqrt(5)
    out = aggregate_sparse([a, b], shapes, clip_to_median=False)
    expected = torch.tensor([[2.0, 0, 0], [0, 2.0, 1.0]])
    torch.testing.assert_close(out["w"], expected)


def test_clip_to_median_by_hand():
    assert clip_scales([1.0, 2.0, 4.0]) == [1.0, 1.0, 0.5]
    assert clip_scales([2.0, 4.0]) == [1.0, 0.75]  # median of two is their mean, 3
    shapes = {"w": (4,)}
    peers = [{"w": sp([0], [1.0])}, {"w": sp([1], [2.0])}, {"w": sp([2], [40.0])}]
    assert sparse_norm(peers[2]) == 40.0
    out = aggregate_sparse(peers, shapes)
    torch.testing.assert_close(out["w"], torch.tensor([1.0, 2.0, 2.0, 0.0]) / 3)


def test_same_inputs_same_order_bit_identical():
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (64, 64), "b": (128,)}
    peers = []
    for _ in range(5):
        peer = {}
        for name, shape in shapes.items():
            n = torch.tensor(shape).prod().item()
            idx = torch.randperm(n, generator=g)[: n // 8]
            peer[name] = (idx, torch.randn(len(idx), generator=g))
        peers.append(peer)
    x = aggregate_sparse(peers, shapes)
    y = aggregate_sparse(peers, shapes)
    assert all(torch.equal(x[k], y[k]) for k in shapes)


def test_apply_delta_and_unknown_names():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))
    apply_delta(model, {"weight": torch.tensor([[1.0, -1.0]])}, lr=0.5)
    torch.testing.assert_close(model.weight, torch.tensor([[0.5, 1.5]]))
    import pytest

    with pytest.raises(KeyError):
        apply_delta(model, {"nope": torch.zeros(1)}, lr=1.0)


def test_diloco_nesterov_by_hand():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    outer = DilocoOuterOptimizer(model, lr=0.5, momentum=0.9)
    d = aggregate_dense([{"weight": torch.tensor([[2.0]])}, {"weight": torch.tensor([[0.0]])}])
    outer.step(d)  # buf = 1; nesterov update = g + 0.9 * buf = 1.9; w = 1 - 0.5 * 1.9
    torch.testing.assert_close(model.weight, torch.tensor([[0.05]]))


def test_sparse_outer_state_without_momentum_is_lr_times_aggregate():
    from template.training.outer import SparseOuterState

    st = SparseOuterState(lr=2.0)
    out = st.update({"w": torch.tensor([1.0, -0.5])})
    torch.testing.assert_close(out["w"], torch.tensor([2.0, -1.0]))
    assert st.buffer == {}  # stateless: the network's step


def test_sparse_outer_state_nesterov_by_hand():
    from template.training.outer import SparseOuterState

    st = SparseOuterState(lr=0.5, momentum=0.5)
    # step 1: b = g1 = 2 ; step = 0.5 * (2 + 0.5 * 2) = 1.5
    torch.testing.assert_close(st.update({"w": torch.tensor([2.0])})["w"], torch.tensor([1.5]))
    # step 2: b = 0.5 * 2 + 4 = 5 ; step = 0.5 * (4 + 0.5 * 5) = 3.25
    torch.testing.assert_close(st.update({"w": torch.tensor([4.0])})["w"], torch.tensor([3.25]))
    with pytest.raises(ValueError):
        SparseOuterState(lr=1.0, momentum=1.0)


def test_diloco_without_momentum_is_plain_sgd():
    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    opt = DilocoOuterOptimizer(m, lr=1.0, momentum=0.0)
    opt.step({"weight": torch.tensor([[0.25]])})
    opt.step({"weight": torch.tensor([[0.25]])})
    assert float(m.weight.detach()) == 0.5


def test_work_weighted_mean_by_hand():
    """A peer that trained a quarter of the window counts a quarter (FedAvg weights)."""
    shapes = {"w": (2, 3)}
    a = {"w": sp([0, 4], [3.0, 4.0])}
    b = {"w": sp([0, 5], [1.0, 2.0])}
    out = aggregate_sparse([a, b], shapes, clip_to_median=False, work=[1.0, 0.25])
    expected = torch.tensor([[3.25, 0, 0], [0, 4.0, 0.5]]) / 1.25
    torch.testing.assert_close(out["w"], expected)
    assert peer_factors([a, b], [1.0, 0.25], clip_to_median=False) == ([1.0, 0.25], 1.25)


def test_full_work_shares_give_the_plain_mean_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    shapes = {"a": (32, 16)}
    peers = []
    for _ in range(4):
        idx = torch.randperm(512, generator=g)[:64]
        peers.append({"a": (idx, torch.randn(64, generator=g))})
    plain = aggregate_sparse(peers, shapes)
    full = aggregate_sparse(peers, shapes, work=[1.0] * 4)
    assert torch.equal(plain["a"], full["a"])
    lazy = aggregate_sparse(peers, shapes, work=[1.0, 1.0, 1.0, 0.25])
    assert not torch.equal(plain["a"], lazy["a"])


def test_bad_work_shares():
    peers = [{"w": sp([0], [1.0])}, {"w": sp([1], [2.0])}]
    assert peer_factors(peers, [0.0, 0.0], clip_to_median=False) == ([1.0, 1.0], 2.0)
    assert peer_factors(peers, [float("nan"), 3.0], clip_to_median=False) == ([0.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="2 work shares for 1 peers"):
        peer_factors(peers[:1], [1.0, 1.0])
