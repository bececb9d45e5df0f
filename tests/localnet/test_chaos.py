"""CI chaos, shortened: the REAL local subnet (dev chain, journalled S3, 2 miners, 1 validator,
tiny preset) for 12 windows while S3 is paused mid-window (SIGSTOP 6 s: an outage of the
validator's own bucket and of every peer's) and a miner is killed with -9 mid-window and
restarted by the supervisor. It covers: the validator surviving a storage outage, a miner
surviving kill -9 with its state, supervision, and chaos_localnet.py's JSON contract. The full
run (24 windows, 7 faults incl. the validator, the chain and S3 killed) is
``python scripts/chaos_localnet.py --json``: docs/localnet.md, docs/benchmarks.md."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "chaos_localnet.py"
REPLAY = ROOT / "scripts" / "localnet_replay_window.py"
# 265 s at load 7-8 with 0.5 s blocks (the run itself 136-145 s); the default is now 1 s blocks
TIMEOUT_S = 720

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + 60)]


@pytest.fixture(scope="module")
def chaos(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("chaos") / "run"
    cmd = [sys.executable, str(SCRIPT), "--windows", "12", "--spacing", "3", "--pause", "6"]
    cmd += ["--plan", "pause:s3,kill:miner-1", "--run.dir", str(run_dir), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-4000:]
    return json.loads(lines[0]) | {"run_dir_for_tests": str(run_dir)}


def test_nothing_crashes_nothing_is_lost_every_node_comes_back(chaos):
    detail = json.dumps(chaos, indent=1)[:4000]
    assert chaos["stop_reason"] == "windows", detail
    assert chaos["windows_validated"] >= 12, detail
    assert [f["kind"] + ":" + f["node"] for f in chaos["faults"]["list"]] == [
        "pause:s3",
        "kill:miner-1",
    ], detail
    assert chaos["crashed"] == [] and chaos["state_lost"] == [], detail  # unhandled / lost
    assert chaos["recovered"] == ["miner-1"] and chaos["down"] == [], detail
    assert chaos["in_sync"], detail
    for key, lags in chaos["recovery_windows"].items():  # the nodes a fault did not kill
        for node, lag in lags.items():
            if key.split("@")[0] != f"kill:{node}":
                assert lag is not None and lag <= 2, (key, node, detail)


def test_the_killed_node_is_in_sync_within_two_windows_of_its_restart(chaos):
    """Its start-up included (measured: 1 window in the CI variant, 1-3 in the full run on a
    loaded 2-core machine; docs/benchmarks.md, chaos second pass)."""
    assert not chaos["slow_to_recover"], chaos["recovery_windows"]
    assert chaos["startup_windows"] and all(
        lag is not None and lag <= 2 for lag in chaos["startup_windows"].values()
    ), chaos["startup_windows"]


def test_no_honest_upload_penalised(chaos):
    """penalties.py: no rejection, no upload missing or late outside the paused window and the
    next or while the killed miner was down."""
    assert chaos["honest_penalised"] == 0, (chaos["rejected"], chaos["missing_outside_faults"])
    assert chaos["ok"]


def test_a_window_replays_from_the_journal_as_the_validator_measured_it(chaos):
    """scripts/localnet_replay_window.py rebuilds the leader's model from its journalled
    checkpoint and aggregates, opens the window's uploads and measures each one: the gains
    come out as the validator logged them (the last window both miners' uploads were judged)."""
    run = Path(chaos["run_dir_for_tests"])
    log = (run / "logs" / "validator-0.log").read_text()
    judged: dict[int, set[str]] = {}
    for w, uid in re.findall(r"validator\.judge: window (\d+): uid (\d+): .*gain", log):
        judged.setdefault(int(w), set()).add(uid)
    window = max(w for w, uids in judged.items() if len(uids) >= 2)
    cmd = [sys.executable, str(REPLAY), str(run), "--window", str(window), "--large", "16"]
    proc = subprocess.run(cmd + ["--tensors", "0", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert set(out["uids"]) >= judged[window], (judged[window], out["uids"].keys())
    for uid in judged[window]:
        r = out["uids"][uid]
        assert r["matches_log"], (window, uid, r["gain"], r["logged_gain"])
    assert math.isfinite(out["outer_step_gain"])
