"""The training worker: protocol page order, the delta, and jobs applied between steps."""

from __future__ import annotations

import threading

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


def test_window_delta_excludes_an_aggregate_applied_mid_window(tiny_dataset):
    hp = small_hparams()
    ds = _dataset(tiny_dataset, hp)
    trainer = Trainer(hp, build_model(hp.model), ds, uid=0, max_steps=6)
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
