"""The training worker: protocol page order, the delta, and jobs applied between steps."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

import template.miner.trainer as trainer_module
from template.miner.sync import Sync, TrainerModel
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


def _params(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def test_a_window_that_fails_part_way_leaves_nothing_in_the_next_delta(tiny_dataset, monkeypatch):
    """An error after some steps (CUDA OOM, a dataset error) while window 0's progress is
    carried: the failed steps are dropped, and window 2's delta is its own training only."""
    hp = small_hparams(**{"train.inner_steps": 2})
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=0)
    trainer.train_window(0, lambda: False)
    assert trainer.overlap.ahead is not None  # window 0's aggregate has not come: carried
    real, calls, seen = trainer_module.train_steps, [], []

    def flaky(model, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # window 1: the first step works, the second fails
            raise RuntimeError("CUDA out of memory (simulated)")
        seen.append(_params(model))  # the live weights each step starts from
        return real(model, *a, **k)

    monkeypatch.setattr(trainer_module, "train_steps", flaky)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train_window(1, lambda: False)
    assert trainer.overlap.ahead is None
    glob = _params(trainer.global_model)
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, glob[n])  # live <- global: the failed step is gone
    res = trainer.train_window(2, lambda: False)
    end = _params(trainer.model)
    for n in end:  # window 2 started from the global model; its delta is its two steps
        assert torch.equal(seen[-2][n], glob[n])
        torch.testing.assert_close(res.delta[n], seen[-2][n] - end[n], rtol=0, atol=1e-6)


def test_an_outer_step_failing_on_the_live_weights_is_applied_once(tiny_dataset):
    """The step is in the global model when the live half fails: the window counts as applied
    (a retry must not apply it again) and the live weights restart from the global model."""
    hp = small_hparams()
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=0)
    trainer.train_window(0, lambda: False)  # some carried progress in the live weights
    before = _params(trainer.global_model)
    calls = []

    def step(model):  # stands in for partial(apply_uploads, uploads=..., hp=...)
        calls.append(model)
        if len(calls) == 2:  # the live weights' half of the first attempt
            raise RuntimeError("CUDA out of memory (simulated)")
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3)
        return 1

    gm, first = TrainerModel(trainer), []
    with contextlib.suppress(RuntimeError):  # (it used to come out here, window 0 not applied)
        first.append(asyncio.run(gm.apply(0, step)))
    with pytest.raises(RuntimeError, match="out of order"):  # Sync.run's retry of window 0
        asyncio.run(gm.apply(0, step))
    live = dict(trainer.model.named_parameters())
    for name, p in trainer.global_model.named_parameters():
        torch.testing.assert_close(p, before[name] + 1e-3, rtol=0, atol=1e-7)  # once
        assert torch.equal(live[name], p)
    assert first[0][0] == 1 and trainer.applied_through == 0  # the global model's step counts
    assert trainer.overlap.ahead is None and not trainer.global_suspect


def test_an_outer_step_failing_on_the_global_model_asks_for_a_resync(tiny_dataset):
    """The global model may hold part of the step: Sync re-syncs rather than retry it."""
    hp = small_hparams()
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=0)

    def step(model):
        raise RuntimeError("CUDA out of memory (simulated)")

    with pytest.raises(RuntimeError, match="out of memory"):
        asyncio.run(TrainerModel(trainer).apply(0, step))
    assert trainer.applied_through == -1 and trainer.global_suspect
    resyncs = []

    async def resync():
        resyncs.append(sync.needs_resync)
        raise asyncio.CancelledError  # ends Sync.run's loop

    sync = SimpleNamespace(trainer=trainer, needs_resync=False, resync=resync)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(Sync.run(sync))
    assert resyncs == [True] and not trainer.global_suspect


def _resync_at(trainer: Trainer, poll: int) -> tuple[Callable[[], bool], list[threading.Thread]]:
    """A ``should_end`` that queues a re-sync's ``replace`` (same weights) at its ``poll``-th
    call, as the event loop would: from another thread, run by the drain before the next step."""
    source, polls, threads = copy.deepcopy(trainer.global_model), [], []

    def should_end() -> bool:
        polls.append(1)
        if len(polls) == poll:
            gm = TrainerModel(trainer)
            t = threading.Thread(target=lambda: asyncio.run(gm.replace(-1, source)))
            t.start()
            while trainer._jobs.qsize() == 0:
                time.sleep(0.01)
            threads.append(t)
        return False

    return should_end, threads


def test_a_resync_mid_window_voids_the_window(tiny_dataset):
    """A re-sync after some steps drops them from the live weights: the delta would hold the
    later steps only while the upload claims every step and page, so nothing is sent."""
    hp = small_hparams(**{"train.inner_steps": 4})
    trainer = Trainer(hp, build_model(hp.model), _dataset(tiny_dataset, hp), uid=0)
    should_end, threads = _resync_at(trainer, poll=4)  # after 3 of the 4 steps
    res = trainer.train_window(0, should_end)
    threads[0].join()
    assert res.steps == 4 and res.delta == {} and "after 3 of its 4 steps" in res.void
    assert trainer.overlap.ahead is None  # nothing of it is carried into the next window
    should_end, threads = _resync_at(trainer, poll=1)  # before the first step: nothing lost
    ok = trainer.train_window(1, should_end)
    threads[0].join()
    assert ok.void == "" and ok.steps == 4 and ok.delta
