"""The live weights while the previous outer step is in flight, on a one-weight model."""

import torch

from template.training.overlap import LiveOverlap


def _model(value: float) -> torch.nn.Linear:
    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def _w(m: torch.nn.Module) -> float:
    return round(float(m.weight.detach()), 4)


def _step(m: torch.nn.Module, by: float) -> None:
    with torch.no_grad():
        m.weight.add_(by)


def test_carry_keeps_own_progress_until_the_outer_step_replaces_it():
    ov, live = LiveOverlap(carry=True), _model(5.0)
    g = {"weight": torch.tensor([[1.0]])}
    ov.begin(g, live)  # nothing carried yet: start from the global model
    assert _w(live) == 1.0
    _step(live, 0.3)  # window 0 trains: live 1.3, delta -0.3
    assert round(float(ov.end(g, live)["weight"]), 4) == -0.3
    ov.begin(g, live)  # window 1 carries on from 1.3 (= global - ahead)
    assert _w(live) == 1.3
    _step(live, 0.1)  # 1.4, then window 0's outer step (-0.5) reaches both models
    g = {"weight": torch.tensor([[0.5]])}
    _step(live, -0.5)
    ov.rebase(live)  # own 0.3 swapped for the aggregate: new global 0.5 + this window's 0.1
    assert _w(live) == 0.6 and ov.ahead is None
    _step(live, 0.2)
    # window 1's delta is its own training only: 0.1 + 0.2
    assert round(float(ov.end(g, live)["weight"]), 4) == -0.3
    assert round(float(ov.ahead["weight"]), 4) == -0.3  # window 2 carries on from 0.8


def test_carried_progress_no_step_replaced_is_counted_once_then_dropped():
    ov, live = LiveOverlap(carry=True), _model(0.0)
    g = {"weight": torch.tensor([[1.0]])}
    ov.begin(g, live)
    _step(live, 0.3)
    ov.end(g, live)
    ov.begin(g, live)
    _step(live, 0.2)  # no outer step arrives in this window: live = 1.5
    assert round(float(ov.end(g, live)["weight"]), 4) == -0.2  # not -0.5
    assert ov.ahead is None
    ov.begin(g, live)  # so the next window restarts from the global model
    assert _w(live) == 1.0


def test_stale_start_always_restarts_from_the_global_model():
    ov, live = LiveOverlap(carry=False), _model(0.0)
    g = {"weight": torch.tensor([[1.0]])}
    ov.begin(g, live)
    _step(live, 0.3)
    assert round(float(ov.end(g, live)["weight"]), 4) == -0.3 and ov.ahead is None
    ov.begin(g, live)
    assert _w(live) == 1.0
    _step(live, -0.5)
    ov.rebase(live)  # nothing carried: the outer step alone moves the live weights
    assert _w(live) == 0.5


def test_reset_forgets_the_carried_progress():
    ov, live = LiveOverlap(), _model(0.0)
    g = {"weight": torch.tensor([[2.0]])}
    ov.begin(g, live)
    _step(live, 1.0)
    ov.end(g, live)
    ov.reset()
    ov.begin(g, live)
    assert _w(live) == 2.0
