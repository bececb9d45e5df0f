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
