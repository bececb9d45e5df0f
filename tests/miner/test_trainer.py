"""The training worker: protocol page order, the delta, and jobs applied between steps."""

from __future__ import annotations

import threading

import pytest
import torch

from template.miner.trainer import PageStream, Trainer
from template.training.model import build_model
from template.training.pages import PageDataset, batches
from template.training.shards import TokenStream

from .conftest import small_hparams


def _dataset(tiny_dataset, hp):
    return PageDataset(TokenStream(tiny_dataset), hp)


def test_page_stream_matches_the_protocol_assignment(tiny_dataset):
    hp = small_hparams(**{"train.batch_size": 3, "train.inner_steps": 5})
    ds = _dataset(tiny_dataset, hp)
    stream = PageStream(ds, window=7, uid=2, batch_size=3)
    got = [stream.batch(i) for i in range(hp.train.inner_steps)]
    pages = ds.layout.pages(7, 2, hp.pages_per_window)
    want = batches(ds.sequences(pages), 3, hp.train.inner_steps)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert stream.pages == pages
    # it keeps going on further pages of the same stream
    more = [stream.batch(i) for i in range(5, 12)]
    assert all(b.shape[0] == 3 for b in more)
    assert stream.pages == ds.layout.pages(7, 2, len(stream.pages))


def test_a_window_is_exactly_h_steps_on_its_page_budget(tiny_dataset):
    hp = small_hparams(**{"train.inner_steps": 3, "train.batch_size": 5})
    ds = _dataset(tiny_dataset, hp)
    res = Trainer(hp, build_model(hp.model), ds, uid=1).train_window(2, lambda: False)
    assert res.steps == 3
    assert res.pages == ds.layout.pages(2, 1, hp.pages_per_window)
    lazy = Trainer(hp, build_model(hp.model), ds, uid=1, max_steps=1)
    assert lazy.train_window(2, lambda: False).steps == 1
    with pytest.raises(ValueError, match="inner_steps"):
        Trainer(hp, build_model(hp.model), ds, uid=1, max_steps=4)


def test_window_delta_excludes_an_aggregate_applied_mid_window(tiny_dataset):
    hp = small_hparams(**{"train.inner_steps": 6})
    ds = _dataset(tiny_dataset, hp)
    trainer = Trainer(hp, build_model(hp.model), ds, uid=0)
    before = {n: p.detach().clone() for n, p in trainer.global_model.named_parameters()}
    bump = {n: torch.full_like(p, 1e-3) for n, p in trainer.global_model.named_parameters()}
    applied = threading.Event()
    steps_seen = []

    def add(model):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.add_(bump[n])
        return 1

    def should_end():
        steps_seen.append(1)
        if len(steps_seen) == 3 and not applied.is_set():
            # as the event loop would: submit from another thread while training runs
            t = threading.Thread(target=lambda: trainer.submit(lambda: trainer.apply_outer(add)))
            t.start()
            t.join()
            applied.set()
        return False

    res = trainer.train_window(4, should_end)
    assert res.steps == 6 and res.pages == ds.layout.pages(4, 0, len(res.pages))
    assert res.train_seconds > 0 and res.tokens == 6 * hp.train.batch_size * hp.model.seq_len
    for n, p in trainer.global_model.named_parameters():
        assert torch.allclose(p, before[n] + bump[n])
    # the delta is global - live: the bump cancels out, only training remains
    live = dict(trainer.model.named_parameters())
    for n, p in trainer.global_model.named_parameters():
        assert torch.equal(res.delta[n], (p - live[n]).detach().float())
    live = dict(trainer.model.named_parameters())
    for n, p in trainer.global_model.named_parameters():
        assert not torch.equal(p, live[n])


def test_idle_submit_runs_at_once_and_stop_ends_the_window(tiny_dataset):
    hp = small_hparams()
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=1)
    assert trainer.submit(lambda: 42).result(timeout=5) == 42
    trainer.stop.set()
    res = trainer.train_window(0, lambda: False)
    assert res.steps == 0 and res.delta == {}


def test_next_window_carries_on_then_swaps_own_progress_for_the_aggregate(tiny_dataset):
    """Window 1 starts from window 0's trained weights (not the global model); when window 0's
    aggregate arrives, the live weights become the new global model plus window 1's steps."""
    hp = small_hparams()
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=0, max_steps=2)

    def params(m):
        return {n: p.detach().clone() for n, p in m.named_parameters()}

    trainer.train_window(0, lambda: False)
    end0 = params(trainer.model)
    bump = {n: torch.full_like(p, 1e-3) for n, p in end0.items()}

    def add(model):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.add_(bump[n])
        return 1

    seen, rebased = [], []

    def should_end():
        seen.append(params(trainer.model))
        if len(seen) == 2:  # after window 1's first step, window 0's aggregate arrives
            job = lambda: (trainer.apply_outer(add), rebased.append(params(trainer.model)))  # noqa: E731
            t = threading.Thread(target=lambda: trainer.submit(job))
            t.start()
            t.join()
        return False

    res = trainer.train_window(1, should_end)
    glob = params(trainer.global_model)
    for n in end0:
        assert torch.equal(seen[0][n], end0[n])  # carried on from window 0's end
        own_step = seen[1][n] - end0[n]
        torch.testing.assert_close(rebased[0][n] - glob[n], own_step, rtol=0, atol=1e-6)
        # the delta is window 1's two steps only: global - live, the carried progress gone
        torch.testing.assert_close(res.delta[n], glob[n] - seen[2][n], rtol=0, atol=1e-6)


def test_an_outer_step_submitted_while_the_delta_is_taken_waits_for_it(tiny_dataset):
    """The delta is read from both models after the last step; an aggregate that arrives then
    (another thread's submit) must queue, not run in that thread halfway through the read."""
    hp = small_hparams(**{"train.inner_steps": 2})
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=0)
    before = {n: p.detach().clone() for n, p in trainer.global_model.named_parameters()}

    def add(model):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3)
        return 1

    real_end, futures, trained = trainer.overlap.end, [], {}

    def end(global_params, live):
        job = lambda: trainer.apply_outer(add)  # noqa: E731
        t = threading.Thread(target=lambda: futures.append(trainer.submit(job)))
        t.start()
        t.join()
        assert not futures[0].done()  # queued behind the delta, not run in the other thread
        trained.update({n: p.detach().clone() for n, p in live.named_parameters()})
        return real_end(global_params, live)

    trainer.overlap.end = end
    res = trainer.train_window(0, lambda: False)
    assert futures[0].result(timeout=5) == 1  # run by the window's final drain
    live = dict(trainer.model.named_parameters())
    for n, p in trainer.global_model.named_parameters():
        torch.testing.assert_close(p, before[n] + 1e-3, rtol=0, atol=1e-7)
        # the delta is the window's training only: the outer step came after it was read
        assert torch.equal(res.delta[n], (before[n] - trained[n]).float())
        # and the outer step then replaced that progress in the live weights
        torch.testing.assert_close(live[n], p, rtol=0, atol=1e-6)
