"""CI end to end, multi-rank: a short local subnet whose only miner and only validator each run
as 2 torch.distributed ranks (``--miner.ranks 2 --validator.ranks 2``, FSDP2 over gloo on CPU).
Separate from test_localnet.py so the main run keeps its timing; judged on the summary and the
nodes' logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localnet.py"
WINDOWS = 8
TIMEOUT_S = 420

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + 120)]


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("localnet-ranks")
    cmd = [sys.executable, str(SCRIPT), "--miners", "1", "--validators", "1", "--miner.ranks", "2"]
    cmd += ["--validator.ranks", "2"]
    cmd += ["--run.max-windows", str(WINDOWS), "--hparams", "tiny", "--json"]
    cmd += ["--run.dir", str(run_dir), "--run.timeout", str(TIMEOUT_S)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S + 90)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    s = json.loads(lines[0])
    s["_rc"], s["_stderr"] = proc.returncode, proc.stderr[-4000:]
    miner = next(n for n in s["nodes"] if n["role"] == "miner")
    s["_miner"], s["_miner_log"] = miner, Path(miner["log"]).read_text(errors="replace")
    validator = next(n for n in s["nodes"] if n["role"] == "validator")
    s["_validator_log"] = Path(validator["log"]).read_text(errors="replace")
    return s


def _why(s: dict) -> str:
    skip = ("nodes", "windows", "epochs", "_miner_log", "_validator_log")
    brief = {k: v for k, v in s.items() if k not in skip}
    return f"\n{json.dumps(brief, default=str)[:3000]}\n{s['_miner_log'][-3000:]}"


def test_the_two_rank_miner_runs_and_stops_cleanly(summary):
    assert summary["stop_reason"] == "windows" and summary["crashed"] == [], _why(summary)
    assert summary["_rc"] == 0, _why(summary)
    log = summary["_miner_log"]
    assert "rank 0 of 2" in log and "rank 1 of 2" in log, _why(summary)
    assert "sharded miner stopped" in log and "Traceback" not in log, _why(summary)
    assert summary["_miner"]["exit_code"] == 0, _why(summary)


def test_the_two_rank_validator_measures_and_stops_cleanly(summary):
    log = summary["_validator_log"]
    assert "sharded validator stopped" in log and "Traceback" not in log, log[-3000:]
    assert sum(w["uploads_valid"] for w in summary["windows"]) >= 2, _why(summary)


def test_its_uploads_land(summary):
    assert summary["_miner"]["uploads_done"] >= 2, _why(summary)
    assert sum(w["uploads_seen"] for w in summary["windows"]) >= 2, _why(summary)


def test_its_uploads_are_accepted(summary):
    assert summary["uploads_rejected"] == 0, _why(summary)


def test_it_stays_on_the_global_model(summary):
    assert summary["_miner"]["in_sync"] is True, _why(summary)
