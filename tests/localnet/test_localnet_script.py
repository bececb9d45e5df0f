"""scripts/localnet.py end to end with stand-in neurons (tests/localnet/fake_neurons): the real
chain, S3, wallets, registration, stake, buckets, dataset, the CLI contract, the JSON summary,
the plot and a clean Ctrl-C. The real neurons run in tests/e2e/test_localnet.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parent / "fake_neurons"
SCRIPT = ROOT / "scripts" / "localnet.py"

pytestmark = pytest.mark.timeout(150)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _cmd(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--neurons.dir",
        str(FAKES),
        "--run.dir",
        str(run_dir),
        "--chain.block-time",
        "0.2",
        *extra,
    ]


def test_json_summary_and_plot(tmp_path):
    run_dir = tmp_path / "run"
    png = tmp_path / "plot.png"
    proc = subprocess.run(
        _cmd(
            run_dir, "--run.max-windows", "2", "--json", "--plot", str(png), "--run.timeout", "120"
        ),
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout  # ONE JSON object, nothing else on stdout
    s = json.loads(lines[0])
    assert s["ok"] and s["stop_reason"] == "windows"
    assert s["windows_completed"] >= 2
    assert s["weights_set"] >= 1
    assert s["loss_end"] < s["loss_start"]
    assert s["in_sync"] is True and s["uploads_missing"] == 0
    assert set(s["miner_incentive"]) == {"1", "2"}
    assert all(v > 0 for v in s["miner_incentive"].values())
    assert s["seconds_to_first_weights"] > 0
    assert png.is_file() and png.stat().st_size > 5000
    assert (run_dir / "summary.json").is_file()
    history = [json.loads(ln) for ln in (run_dir / "history.jsonl").read_text().splitlines()]
    assert len(history) == s["windows_completed"] and s["history"] == str(run_dir / "history.jsonl")
    assert {"heldout_loss", "incentive", "scores", "rejected"} <= set(history[-1])
    for name in ("chain", "s3", "validator-0", "miner-0", "miner-1"):
        assert (run_dir / "logs" / f"{name}.log").is_file()
    pids = json.loads((run_dir / "pids.json").read_text())
    assert not [n for n, pid in pids.items() if _alive(pid)]
    # the neurons got the storage and dataset flags the protocol names
    log = (run_dir / "logs" / "miner-0.log").read_text()
    assert "--storage.allow-private" in log and "--dataset.bucket-config" in log


def test_ctrl_c_stops_every_process(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(run_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        seen = ""
        while "Ctrl-C stops everything" not in seen:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, seen[-2000:]
            seen += line
            assert time.monotonic() < deadline, seen[-2000:]
        pids = json.loads((run_dir / "pids.json").read_text())
        assert all(_alive(p) for p in pids.values())
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping (interrupted)" in out
    assert "local subnet finished (interrupted)" in out
    assert not [n for n, pid in pids.items() if _alive(pid)], pids


def test_bad_flags_fail_fast():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--miners", "0"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "--miners must be >= 1 (got 0)" in proc.stderr
