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


def test_delayed_window_gets_the_late_outer_step_after_half_the_steps(monkeypatch):
    """Live schedule: a miner starts window w without w-1's step and receives it mid-window."""
    import torch

    from template.training import simulate as sim

    seen: list[tuple[float, int, int]] = []

    def fake_train_steps(model, opt, batches, cfg, *, start_step, device):
        with torch.no_grad():
            for _ in batches:  # one "step": record the weight, then add 0.1
                seen.append((float(model.weight), start_step, len(batches)))
                model.weight.add_(0.1)

    monkeypatch.setattr(sim, "train_steps", fake_train_steps)
    hp = load_hparams("tiny").replace(**{"train.inner_steps": 4})
    rep = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        rep.weight.fill_(1.0)  # the global model, which already holds the late step
    late = {"weight": torch.tensor([[0.5]])}  # theta_global = theta_before - 0.5
    sim._train_window(rep, None, [0, 1, 2, 3], hp, 3, late, "cpu")
    # steps 0-1 see the global without the late step (1.5, 1.6); then -0.5; steps 2-3 see 1.2, 1.3
    assert [round(s[0], 4) for s in seen] == [1.5, 1.6, 1.2, 1.3]
    assert [s[1] for s in seen] == [12, 12, 14, 14]  # the lr schedule resumes at w*H + H/2
    assert round(float(rep.weight), 4) == 1.4  # delta vs the global = -0.4: only local steps
    seen.clear()
    with torch.no_grad():
        rep.weight.fill_(1.0)
    sim._train_window(rep, None, [0, 1, 2, 3], hp, 3, None, "cpu")  # undelayed: no change
    assert [round(s[0], 4) for s in seen] == [1.0, 1.1, 1.2, 1.3]
