import pytest

from template.hparams import PRESETS, HParamsError, hparams_hash, load_hparams
from template.training.model import build_model, count_params


def test_presets_load_and_hash_is_stable():
    hashes = {p: hparams_hash(load_hparams(p)) for p in PRESETS}
    assert len(set(hashes.values())) == len(PRESETS)
    assert hparams_hash(load_hparams("tiny")) == hashes["tiny"]


def test_hash_changes_with_any_field():
    hp = load_hparams("tiny")
    assert hparams_hash(hp.replace(**{"train.inner_steps": 14})) != hparams_hash(hp)
    assert hparams_hash(hp.replace(**{"compression.topk": 32})) != hparams_hash(hp)


def test_tiny_is_about_one_million_params():
    n = count_params(build_model(load_hparams("tiny").model))
    assert 0.8e6 <= n <= 1.3e6


def test_file_round_trip_and_errors(tmp_path):
    good = tmp_path / "run.toml"
    good.write_text('name = "mine"\n[train]\ninner_steps = 3\n')
    hp = load_hparams(good)
    assert hp.name == "mine" and hp.train.inner_steps == 3

    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("[train]\ninner_stepz = 3\n")
    with pytest.raises(HParamsError, match="inner_stepz"):
        load_hparams(bad_key)

    bad_type = tmp_path / "bad2.toml"
    bad_type.write_text('[train]\ninner_steps = "many"\n')
    with pytest.raises(HParamsError, match="integer"):
        load_hparams(bad_type)

    with pytest.raises(HParamsError, match="no hyperparameter preset"):
        load_hparams("huge")

    bad_value = tmp_path / "bad3.toml"
    bad_value.write_text("[compression]\ntopk = 5000\n")
    with pytest.raises(HParamsError, match="topk"):
        load_hparams(bad_value)


def test_model_init_is_deterministic():
    import torch

    cfg = load_hparams("tiny").model
    a, b = build_model(cfg), build_model(cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
