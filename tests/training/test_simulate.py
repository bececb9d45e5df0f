import pytest

from template.hparams import hparams_hash, load_hparams
from template.signing import dev_keypair
from template.training.model import build_model, param_shapes
from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.training.simulate import EvalSets, simulate
from template.training.wire import decode_upload, encode_upload, upload_size_cap


@pytest.mark.parametrize("method", ["sparseloco", "diloco", "avg", "ddp"])
def test_short_simulation_lowers_the_loss(tiny_dataset, method):
    hp = load_hparams("tiny").replace(
        **{
            "train.inner_steps": 4,
            "train.batch_size": 8,
            "train.warmup_steps": 2,
            "train.total_steps": 16,
        }
    )
    ds = PageDataset(TokenStream(tiny_dataset), hp)
    val = ds.sequences(ds.layout.heldout_pages(0, 2))
    shapes = param_shapes(build_model(hp.model))
    key, run, cap = dev_keypair("//T"), hparams_hash(hp), upload_size_cap(shapes, hp.compression)

    def roundtrip(cd, window, uid):
        blob = encode_upload(
            cd, window=window, uid=uid, hparams_hash=run, config=hp.compression, key=key
        )
        up = decode_upload(
            blob,
            max_bytes=cap,
            expected={"window": window},
            param_shapes=shapes,
            config=hp.compression,
        )
        return up.delta, len(blob)

    r = simulate(
        method,
        hp,
        ds,
        EvalSets(val),
        miners=2,
        outer_steps=4,
        eval_every=2,
        encode_upload=roundtrip if method == "sparseloco" else None,
    )
    assert r.curve[-1]["val_loss"] < r.curve[0]["val_loss"] - 0.3
    assert r.tokens == 4 * 2 * 4 * 8 * hp.model.seq_len
    if method == "sparseloco":
        n = sum(p.numel() for p in build_model(hp.model).parameters())
        assert 0 < r.bytes_per_node_per_window * 8 / n < 0.2  # ~0.16 bits/param at this size
        # the run total is the sum of the four windows' uploads (sizes vary by a few bytes)
        assert 3.9 * r.bytes_per_node_per_window < r.bytes_per_node_total
        assert r.bytes_per_node_total < 4.1 * r.bytes_per_node_per_window


def _fake_steps(monkeypatch, seen):
    import torch

    from template.training import simulate as sim

    def fake_train_steps(model, opt, batches, cfg, *, start_step, device):
        with torch.no_grad():
            for _ in batches:  # one "step": record the weight, then add 0.1
                seen.append((round(float(model.weight), 4), start_step))
                model.weight.add_(0.1)

    monkeypatch.setattr(sim, "train_steps", fake_train_steps)
    return sim


def test_stale_window_gets_the_late_outer_step_after_half_the_steps(monkeypatch):
    """Stale start: a miner starts window w from the global model without w-1's step."""
    import torch

    from template.training.overlap import LiveOverlap

    seen: list[tuple[float, int]] = []
    sim = _fake_steps(monkeypatch, seen)
    hp = load_hparams("tiny").replace(**{"train.inner_steps": 4})
    rep = torch.nn.Linear(1, 1, bias=False)
    start = {"weight": torch.tensor([[1.0]])}  # the global model, which already holds the late step
    late = {"weight": torch.tensor([[0.5]])}  # theta_global = theta_before - 0.5
    ov = LiveOverlap(carry=False)
    delta = sim._train_window(rep, None, [0, 1, 2, 3], hp, 3, start, late, ov, "cpu")
    # steps 0-1 see the global without the late step (1.5, 1.6); then -0.5; steps 2-3 see 1.2, 1.3
    assert seen == [(1.5, 12), (1.6, 12), (1.2, 14), (1.3, 14)]  # lr schedule resumes at w*H+H/2
    assert round(float(delta["weight"]), 4) == -0.4  # only local steps
    seen.clear()
    delta = sim._train_window(rep, None, [0, 1, 2, 3], hp, 3, start, None, None, "cpu")
    assert [s[0] for s in seen] == [1.0, 1.1, 1.2, 1.3]  # synchronous: from the global model
    assert round(float(delta["weight"]), 4) == -0.4


def test_live_window_carries_on_from_its_own_weights_until_the_step_arrives(monkeypatch):
    """The network's schedule: window 0 from the global model; window 1 carries on from where
    window 0 ended, then swaps its own window-0 progress for the late outer step."""
    import torch

    from template.training.overlap import LiveOverlap

    seen: list[tuple[float, int]] = []
    sim = _fake_steps(monkeypatch, seen)
    hp = load_hparams("tiny").replace(**{"train.inner_steps": 4})
    rep, ov = torch.nn.Linear(1, 1, bias=False), LiveOverlap(carry=True)
    g0 = {"weight": torch.tensor([[1.0]])}
    d0 = sim._train_window(rep, None, [0, 1, 2, 3], hp, 0, g0, None, ov, "cpu")
    assert [s[0] for s in seen] == [1.0, 1.1, 1.2, 1.3] and round(float(d0["weight"]), 4) == -0.4
    seen.clear()
    g1 = {"weight": torch.tensor([[0.7]])}  # window 0's outer step: 1.0 - 0.3
    late = {"weight": torch.tensor([[0.3]])}
    d1 = sim._train_window(rep, None, [0, 1, 2, 3], hp, 1, g1, late, ov, "cpu")
    # steps 0-1 carry on from 1.4; then the live weights are 0.7 + 0.2 (this window's steps)
    assert seen == [(1.4, 4), (1.5, 4), (0.9, 6), (1.0, 6)]
    assert round(float(d1["weight"]), 4) == -0.4  # window 1's own four steps only


def test_delayed_schedule_is_only_the_sparse_outer_step(tiny_dataset):
    hp = load_hparams("tiny")
    ds = PageDataset(TokenStream(tiny_dataset), hp)
    with pytest.raises(ValueError, match="delayed_outer"):
        simulate(
            "avg", hp, ds, EvalSets(ds.sequences([0])), miners=2, outer_steps=1, delayed_outer=True
        )
