import math

import torch

from template.hparams import load_hparams
from template.training.inner import evaluate_loss, lr_at, make_optimizer, train_steps
from template.training.model import build_model
from template.training.pages import PageDataset, batches
from template.training.shards import TokenStream


def test_lr_schedule_shape():
    cfg = load_hparams("tiny").train
    assert lr_at(0, cfg) < lr_at(cfg.warmup_steps - 1, cfg) == cfg.lr
    assert lr_at(cfg.total_steps, cfg) == cfg.lr * cfg.min_lr_ratio
    mid = lr_at((cfg.warmup_steps + cfg.total_steps) // 2, cfg)
    assert math.isclose(mid, cfg.lr * (1 + cfg.min_lr_ratio) / 2, rel_tol=1e-2)


def test_inner_steps_lower_the_loss_and_accumulation_matches(tiny_dataset):
    hp = load_hparams("tiny")
    ds = PageDataset(TokenStream(tiny_dataset), hp)
    seqs = ds.sequences(ds.layout.pages(0, 0, 4))
    held = ds.sequences(ds.layout.heldout_pages(0, 2))
    bs = batches(seqs, 8, 12)

    model = build_model(hp.model)
    before = evaluate_loss(model, held)
    stats = train_steps(model, make_optimizer(model, hp.train), bs, hp.train, start_step=0)
    assert stats.steps == 12 and stats.tokens == 12 * 8 * hp.model.seq_len
    assert evaluate_loss(model, held) < before - 0.5

    # the same step with micro-batches of 2 gives (nearly) the same weights
    a, b = build_model(hp.model), build_model(hp.model)
    train_steps(a, make_optimizer(a, hp.train), bs[:2], hp.train, start_step=0)
    train_steps(b, make_optimizer(b, hp.train), bs[:2], hp.train, start_step=0, micro_batch_size=2)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_should_stop_is_honoured(tiny_dataset):
    hp = load_hparams("tiny")
    ds = PageDataset(TokenStream(tiny_dataset), hp)
    bs = batches(ds.sequences([0]), 4, 10)
    model = build_model(hp.model)
    calls = iter(range(100))
    stats = train_steps(
        model,
        make_optimizer(model, hp.train),
        bs,
        hp.train,
        start_step=0,
        should_stop=lambda: next(calls) >= 3,
    )
    assert stats.steps == 3
