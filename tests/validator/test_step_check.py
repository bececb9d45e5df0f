"""The leader measures its peer list's whole outer step and publishes no step when it would
raise the control loss (template/validator/step_check.py)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from template.hparams import hparams_hash, load_hparams
from template.protocol.aggregation import apply_uploads, outer_step_weights, upload_work
from template.protocol.documents import PeerList
from template.signing import dev_keypair
from template.training.compression import Compressor
from template.training.inner import sequence_loss
from template.training.model import build_model, param_shapes
from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.training.wire import decode_upload, encode_upload
from template.validator import loop
from template.validator.measure import Measurer, delta_applied, sum_delta
from template.validator.step_check import check_outer_step, vetted_list

HP = load_hparams("tiny")
WINDOW = 3


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(HP.model)


def _gradient_upload(ds: PageDataset, model: torch.nn.Module, uid: int, size: float):
    """An upload whose delta is the gradient on its own assigned pages, at L2 norm ``size``
    before compression: honest uploads of one window share much of that direction."""
    seqs = ds.sequences(list(ds.layout.pages(WINDOW, uid, 4)))
    model.zero_grad()
    sequence_loss(model, seqs).backward()
    grad = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grad.values()))
    delta = Compressor(HP.compression).compress({n: g * (size / norm) for n, g in grad.items()})
    blob = encode_upload(
        delta,
        window=WINDOW,
        uid=uid,
        hparams_hash=hparams_hash(HP),
        config=HP.compression,
        key=dev_keypair(f"//Alice//u{uid}"),
        pages=ds.layout.pages(WINDOW, uid, 4),
    )
    shapes = param_shapes(model)
    return decode_upload(
        blob, max_bytes=1 << 26, expected={}, param_shapes=shapes, config=HP.compression
    )


def _measured(ds, model, size: float):
    """Three uploads measured as the validator measures them (each alone at lr / 3), and the
    leader's check of their outer step."""
    uploads = [_gradient_upload(ds, model, uid, size) for uid in (1, 2, 3)]
    m = Measurer(model, ds, own=6, control=12, salt="v", control_pool=3)
    m.begin_window(WINDOW, uploads, HP.outer.lr / len(uploads))
    gains = [m.measure(u).control_mean for u in uploads]
    check = check_outer_step(m, WINDOW, uploads, HP, param_shapes(model), harm_z=3.0)
    return gains, check


def test_the_measured_step_is_the_step_apply_uploads_takes(tiny_dataset):
    """The step the leader measures is the one every node applies: the same clip to the
    median norm and the same work weights (one upload claims half a window)."""
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = _model()
    uploads = [_gradient_upload(ds, model, uid, s) for uid, s in ((1, 1.0), (2, 3.0), (3, 0.5))]
    half = uploads[2].pages[: HP.pages_per_window // 2]
    uploads[2] = dataclasses.replace(uploads[2], pages=half)
    assert upload_work(uploads[2], HP) == 0.5
    applied = _model()
    assert apply_uploads(applied, uploads, HP) == 3
    measured = _model()
    step = sum_delta(uploads, param_shapes(model), outer_step_weights(uploads, HP))
    with delta_applied(measured, step, HP.outer.lr):
        for (name, a), b in zip(applied.named_parameters(), measured.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=0), name
        assert any(
            not torch.equal(a, b)
            for a, b in zip(model.parameters(), applied.parameters(), strict=True)
        )


def test_uploads_that_each_lower_the_loss_can_raise_it_together(tiny_dataset):
    """Each upload alone, at its weight in the outer step, lowers the control loss; their
    sum moves three times as far along the direction they share and overshoots. The check
    finds the step harmful, and the list the leader publishes then has no peers."""
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = _model()
    gains, check = _measured(ds, model, size=10.0)
    assert min(gains) > 0.05
    assert check.harmful and check.gain < 0 and check.z < -3.0
    assert check.peers == (1, 2, 3) and check.sequences == 12  # control-seqs of the pool
    assert check.record()["applied"] is False
    doc = PeerList(WINDOW, ((1, "a"), (2, "b")), ((3, "c"),), "scores", hparams_hash(HP))
    skipped = vetted_list(doc, check)
    assert skipped.peers == () and skipped.reserves == () and skipped.window == WINDOW


def test_a_step_that_lowers_the_loss_is_published_as_chosen(tiny_dataset):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    gains, check = _measured(ds, model, size=1.0)
    assert min(gains) > 0
    assert not check.harmful and check.gain > 0 and check.z > 3.0
    assert check.record()["applied"] is True
    # the check leaves the model exactly as it was
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    doc = PeerList(WINDOW, ((1, "a"),), (), "scores", hparams_hash(HP))
    assert vetted_list(doc, check) is doc
    assert vetted_list(doc, None) is doc


def test_nothing_to_check_without_peers_or_without_this_windows_control_pool(tiny_dataset):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = _model()
    upload = _gradient_upload(ds, model, 1, 1.0)
    m = Measurer(model, ds, own=6, control=12, salt="v")
    shapes = param_shapes(model)
    assert check_outer_step(m, WINDOW, [upload], HP, shapes, 3.0) is None  # nothing measured
    m.begin_window(WINDOW, [upload], HP.outer.lr)
    assert check_outer_step(m, WINDOW, [], HP, shapes, 3.0) is None
    assert check_outer_step(m, WINDOW + 1, [upload], HP, shapes, 3.0) is None  # stale pool
    assert check_outer_step(m, WINDOW, [upload], HP, shapes, 3.0) is not None
    m.forget()  # the model changed
    with pytest.raises(RuntimeError, match="begin_window"):
        m.step_gain(sum_delta([upload], shapes), HP.outer.lr)


def test_a_step_whose_loss_is_not_finite_is_never_published(tiny_dataset, monkeypatch):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = _model()
    upload = _gradient_upload(ds, model, 1, 1.0)
    m = Measurer(model, ds, own=6, control=12, salt="v")
    m.begin_window(WINDOW, [upload], HP.outer.lr)
    nan = (torch.full((12,), float("nan")), tuple(range(12)))
    monkeypatch.setattr(m, "step_gain", lambda delta, scale: nan)
    check = check_outer_step(m, WINDOW, [upload], HP, param_shapes(model), 3.0)
    assert check.harmful and check.z == 0.0


async def test_a_leader_without_time_for_the_check_publishes_its_list_unchecked(monkeypatch):
    """``report.step_time`` False (plan.py: the check would have cost a measurement): the
    list goes out as chosen, and nothing is measured."""

    def never(*args):
        raise AssertionError("the step was checked")

    monkeypatch.setattr(loop, "check_outer_step", never)
    doc = PeerList(WINDOW, ((1, "a"),), (), "scores", hparams_hash(HP))
    report = loop.WindowReport(WINDOW, is_leader=True, step_time=False)
    v = SimpleNamespace(
        step_check_seconds=0.2,
        measurer=None,
        hp=HP,
        shapes={},
        judge_rules=SimpleNamespace(harm_z=3),
    )
    assert await loop.Validator._checked_step(v, WINDOW, doc, [], report) is doc
    assert report.step is None and v.step_check_seconds == 0.2
    report.step_time = True  # with time: checked
    with pytest.raises(AssertionError, match="checked"):
        await loop.Validator._checked_step(v, WINDOW, doc, [], report)
