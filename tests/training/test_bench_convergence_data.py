"""bench_convergence's data source: a missing default corpus is an error, not a silent swap."""

import argparse
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_convergence", ROOT / "scripts" / "bench_convergence.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_default_corpus_stops_with_a_clear_error(monkeypatch, tmp_path):
    bench = _bench()
    monkeypatch.setattr(bench, "DEFAULT_DATA", tmp_path / "absent.txt")
    with pytest.raises(SystemExit) as err:
        bench.resolve_data(None)
    assert "absent.txt not found" in str(err.value) and "--data stdlib" in str(err.value)


def test_fallback_only_when_asked_and_named(tmp_path):
    bench = _bench()
    paths, source = bench.resolve_data(["stdlib"])
    assert source.startswith("stdlib fallback") and paths[0].is_dir()
    own = tmp_path / "corpus.txt"
    assert bench.resolve_data([str(own)]) == ([own], "user")


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 400)
    return corpus


def _sweep_args(**over):
    """The arguments ``run_seed`` reads, for a one-window run of the methods in ``over``."""
    base = dict(
        eval_pages=2,
        ddp_lr_scales=[0.5],
        diloco_sweep=[],
        miners=2,
        outer_steps=1,
        wire_every=1,
        sparse_momentum=0.0,
        schedule="live",
        device="cpu",
    )
    return argparse.Namespace(**{**base, **over})


class _FakeResult:
    def __init__(self, val_loss: float):
        self.val_loss = val_loss

    def summary(self) -> dict:
        return {"val_loss": self.val_loss}


def test_ddp_gets_the_best_lr_of_its_sweep_and_later_seeds_reuse_it(monkeypatch, tmp_path):
    """The gap is to a tuned DDP: every scale runs on the first seed, the lowest loss wins."""
    bench = _bench()
    seen: list[float] = []

    def fake_simulate(method, hp, *a, **k):
        seen.append(hp.train.lr)
        return _FakeResult(abs(hp.train.lr - 0.003))  # best at 3e-3

    monkeypatch.setattr(bench, "simulate", fake_simulate)
    corpus = _corpus(tmp_path)
    hp = bench.load_hparams("tiny").replace(**{"train.lr": 0.006})
    args = _sweep_args(methods=["ddp"], ddp_lr_scales=[0.4, 0.5, 0.65])
    first = bench.run_seed(args, hp, 0, [corpus], None, tmp_path)
    assert seen == pytest.approx([0.0024, 0.003, 0.0039])
    assert [s["lr_scale"] for s in first["ddp_lr_sweep"]] == [0.4, 0.5, 0.65]
    assert first["results"]["ddp"].val_loss == pytest.approx(0.0)
    assert args.ddp_lr_scales == [0.5]
    seen.clear()
    bench.run_seed(args, hp, 1, [corpus], None, tmp_path)
    assert seen == pytest.approx([0.003])


def test_diloco_sweep_keeps_the_best_pair_for_later_seeds(monkeypatch, tmp_path):
    bench = _bench()
    seen: list[tuple[float, float]] = []

    def fake_simulate(method, hp, *a, **k):
        pair = (hp.outer.diloco_lr, hp.outer.diloco_momentum)
        seen.append(pair)
        return _FakeResult(abs(pair[0] - 0.7) + pair[1])  # best at (0.7, 0.0)

    monkeypatch.setattr(bench, "simulate", fake_simulate)
    corpus = _corpus(tmp_path)
    args = _sweep_args(methods=["diloco"], diloco_sweep=["0.7:0.9", "0.7:0.0", "1.0:0.5"])
    first = bench.run_seed(args, bench.load_hparams("tiny"), 0, [corpus], None, tmp_path)
    assert [(s["lr"], s["momentum"]) for s in first["diloco_sweep"]] == seen
    assert first["results"]["diloco"].val_loss == pytest.approx(0.0)
    assert args.diloco_sweep == ["0.7:0.0"]
