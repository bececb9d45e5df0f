"""bench_convergence's data source: a missing default corpus is an error, not a silent swap."""

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
