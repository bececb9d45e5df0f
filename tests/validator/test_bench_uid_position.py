"""The uid-position check of recorded incentive runs (scripts/bench_uid_position.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_uid_position as position  # noqa: E402


def record(shares_by_seed: dict[int, list[float]], command: str) -> dict:
    runs = [{"seed": s, "honest_shares_of_equal": x} for s, x in shares_by_seed.items()]
    return {"command": command, "small": {"runs": runs}, "label": "not a preset"}


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    return path


def test_one_seed_re_run_many_times_counts_once(tmp_path):
    """A seed whose first uid is low, re-run by ten code versions (ten slightly different
    runs), is one cluster: its runs claim a clear effect, the clusters (that seed and five
    others with none) claim none. A bit-identical replay of a run is not another run."""
    low = [{0: [0.4 + 0.01 * i, 1.3 - 0.005 * i, 1.3 - 0.005 * i]} for i in range(10)]
    even = {s: [1.0, 1.0, 1.0] for s in range(1, 6)}
    records = [record(x, f"run {i}") for i, x in enumerate(low)] + [record(even, "once")]
    records.append(record(low[0], "a replay of run 0"))
    out = position.analyse([write_lines(tmp_path / "a.jsonl", records)], 3, 2000, 0)
    assert (out["runs"], out["clusters"]) == (15, 6)
    assert out["position_under_half"] == [10, 0, 0]
    assert out["runs_first_minus_others"]["mean"] == pytest.approx(10 * -0.8325 / 15)
    clusters = out["clusters_first_minus_others"]
    assert clusters["mean"] == pytest.approx(-0.8325 / 6)
    assert clusters["sign_flip_p"] > 0.2


def test_a_first_uid_low_in_every_seed_is_found(tmp_path):
    shares = {s: [0.8, 1.1 + 0.01 * s, 1.1 - 0.01 * s] for s in range(12)}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(record(shares, "c")))
    out = position.analyse([path], 3, 2000, 0)
    assert out["clusters_first_minus_others"]["mean"] == pytest.approx(-0.3)
    assert out["clusters_first_minus_others"]["sign_flip_p"] < 0.01


def test_runs_with_another_count_of_honest_miners_are_left_out(tmp_path, capsys):
    path = write_lines(tmp_path / "two.jsonl", [record({0: [1.0, 1.0]}, "c")])
    with pytest.raises(SystemExit, match="fewer than 2"):
        position.analyse([path], 3, 10, 0)
    with pytest.raises(SystemExit):
        position.main([str(tmp_path / "absent.jsonl")])
    assert "no such file" in capsys.readouterr().err
    bad = write_lines(tmp_path / "bad.jsonl", [record({0: [1.0, "x", 1.0]}, "c")])
    with pytest.raises(SystemExit, match="not numbers"):
        position.analyse([bad], 3, 10, 0)
