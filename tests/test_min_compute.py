"""min_compute.yml is derived from the presets, so it must match what the script renders now."""

import importlib.util

from template.hparams import load_hparams
from template.training.model import build_model, count_params
from template.training.requirements import (
    VALIDATOR_HELD_WINDOWS,
    param_count,
    requirements,
    sent_values,
)
from tests.conftest import ROOT


def test_param_count_formula_matches_the_model():
    hp = load_hparams("tiny")
    assert param_count(hp) == count_params(build_model(hp.model))


def test_sent_values_and_the_validator_cache_follow_the_model_and_the_loop():
    """An upload's value count is the compressor's (topk per chunk of every tensor), and the
    validator's RAM counts every window its loop holds: the cache's blobs and the window being
    gathered, decoded."""
    from template.training.compression import Compressor
    from template.validator.cache import KEEP_WINDOWS

    hp = load_hparams("tiny")
    model = build_model(hp.model)
    sent = Compressor(hp.compression).compress({n: p.data for n, p in model.named_parameters()})
    assert sent_values(hp) == sum(t.indices.numel() for t in sent.tensors.values())
    assert VALIDATOR_HELD_WINDOWS == KEEP_WINDOWS + 1
    r = requirements(load_hparams("1b"), miners=256)
    assert 40 < r.validator_cache_gb < 70  # 256 x (17.3 M values x 9 B + 4 windows x 20.7 MB)
    assert (
        requirements(load_hparams("1b"), miners=64).validator_cache_gb == r.validator_cache_gb / 4
    )


def test_min_compute_yml_is_up_to_date():
    spec = importlib.util.spec_from_file_location("min_compute", ROOT / "scripts/min_compute.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "min_compute.yml").read_text() == mod.render("1b"), (
        "min_compute.yml is stale: run seed-min-compute --preset 1b --write"
    )


def test_min_compute_prints_and_writes_only_when_asked(tmp_path, monkeypatch, capsys):
    from template.commands.min_compute import main, render

    monkeypatch.chdir(tmp_path)
    assert main(["--preset", "tiny"]) == 0
    assert capsys.readouterr().out == render("tiny") and not list(tmp_path.iterdir())
    assert main(["--preset", "tiny", "--write", "--out", "m.yml"]) == 0
    assert (tmp_path / "m.yml").read_text() == render("tiny")


def test_bigger_presets_need_more():
    sizes = [requirements(load_hparams(p)) for p in ("tiny", "150m", "1b", "8b")]
    assert [r.params for r in sizes] == sorted(r.params for r in sizes)
    assert 7e9 < sizes[-1].params < 9e9 and 1e9 < sizes[2].params < 1.3e9
    assert 0.12e9 < sizes[1].params < 0.2e9
