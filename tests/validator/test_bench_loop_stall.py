"""scripts/bench_loop_stall.py on a micro run: it reports each window's longest hold of the
event loop (the figures themselves are the benchmark's, docs/benchmarks.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_loop_stall as stall  # noqa: E402


def test_reports_every_windows_longest_hold(capsys):
    out = stall.main(
        ["--preset", "small", "--honest", "2", "--windows", "2", "--corpus", "stdlib", "--json"]
    )
    assert capsys.readouterr().out.strip().startswith("{")
    assert [r["window"] for r in out["windows"]] == [10, 11]
    for r in out["windows"]:
        assert r["uploads"] == 2 and r["evaluated"] == 2
        assert r["longest_hold_s"] >= 0 and r["seconds"] > 0
    assert out["longest_hold_s"] == out["windows"][1]["longest_hold_s"]  # the first is skipped


def test_rejects_an_empty_run():
    with pytest.raises(SystemExit):
        stall.main(["--windows", "0"])


def test_times_the_worker_thread_against_the_main_thread(capsys):
    out = stall.main(["--preset", "small", "--thread-cost", "2", "--arena", "own"])
    assert out["pairs"] == 2 and out["arena"] == "own"
    assert out["main_median_s"] > 0 and out["worker_median_s"] > 0
    assert capsys.readouterr().out.strip().startswith("{")
