"""scripts/bench_localnet.py's arithmetic on a summary (the run itself is not timed in tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_localnet.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_localnet", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _window(w, seconds, up_bytes, up_s, eval_s):
    return {
        "window": w,
        "seconds": seconds,
        "heldout_loss": 5.0 - w,
        "miner_upload_bytes": {"1": up_bytes, "2": up_bytes},
        "miner_upload_seconds": {"1": up_s, "2": None},
        "eval_seconds_per_upload": eval_s,
    }


def test_figures_skip_the_first_window_and_average_the_rest():
    summary = {
        "windows": [
            _window(0, 10.0, 999, 9.0, 9.0),  # partial first window: ignored in the means
            _window(1, 20.0, 100, 0.2, 1.0),
            _window(2, 30.0, 300, 0.4, 3.0),
        ],
        "nodes": [
            {"role": "miner", "utilization": 0.8, "train_seconds_total": 90.0, "uploads_done": 9},
            {"role": "miner", "utilization": 0.6, "train_seconds_total": 40.0, "uploads_done": 8},
            {"role": "validator", "utilization": 0.1},
        ],
        "seconds_to_first_weights": 42.0,
        "ok": True,
    }
    f = _bench().figures(summary)
    assert f["windows_per_hour"] == 3600 * 2 / 20.0
    assert abs(f["miner_utilization"] - 0.7) < 1e-9
    assert abs(f["miner_seconds_per_upload"] - 7.5) < 1e-9  # training time per upload: (10 + 5) / 2
    assert abs(f["miner_put_seconds_per_upload"] - 0.3) < 1e-9
    assert f["validator_seconds_per_upload"] == 2.0
    assert f["bytes_per_window"] == 400.0  # (200 + 600) / 2
    assert f["seconds_to_first_weights"] == 42.0


def test_figures_of_an_empty_run_are_none():
    f = _bench().figures({"windows": [], "nodes": []})
    assert f["windows_per_hour"] is None and f["bytes_per_window"] is None
