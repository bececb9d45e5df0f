"""CI chaos, shortened: the REAL local subnet (dev chain, journalled S3, 2 miners, 1 validator,
tiny preset) for 8 windows while S3 is paused mid-window (SIGSTOP 6 s: an outage of the
validator's own bucket and of every peer's) and a miner is killed with -9 mid-window and
restarted by the supervisor. It covers: the validator surviving a storage outage, a miner
surviving kill -9 with its state, supervision, and chaos_localnet.py's JSON contract. The full
run (24 windows, 7 faults incl. the validator, the chain and S3 killed) is
``python scripts/chaos_localnet.py --json``: docs/localnet.md, docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "chaos_localnet.py"
TIMEOUT_S = 300

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + 60)]


def test_short_chaos_run_loses_nothing(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--windows", "8", "--spacing", "2", "--pause", "6"]
    cmd += ["--plan", "pause:s3,kill:miner-1", "--run.dir", str(tmp_path / "run"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-4000:]
    out = json.loads(lines[0])
    detail = json.dumps(out, indent=1)[:4000]
    assert out["stop_reason"] == "windows", detail
    assert out["faults"]["count"] == 2, detail
    assert [f["kind"] + ":" + f["node"] for f in out["faults"]["list"]] == [
        "pause:s3",
        "kill:miner-1",
    ]
    assert out["crashed"] == [] and out["state_lost"] == [], detail  # nothing unhandled or lost
    assert out["recovered"] == ["miner-1"] and out["down"] == [], detail
    assert out["in_sync"], detail
    assert out["windows_validated"] >= 8, detail
    assert not out["slow_to_recover"], detail  # every node in sync within 2 windows
    assert out["honest_penalised"] == 0, detail
    assert out["ok"] and proc.returncode == 0, detail
