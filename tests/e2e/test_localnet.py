"""CI end to end: a short real local subnet (dev chain, local S3, 2 miners, 1 validator, tiny
preset) through ``scripts/localnet.py --json``, judged on its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localnet.py"
WINDOWS = 14

TIMEOUT_S = 540  # the run gives up (and fails) well before pytest's own limit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(TIMEOUT_S + 120),
    pytest.mark.skipif(
        not (
            (ROOT / "neurons" / "miner.py").is_file()
            and (ROOT / "neurons" / "validator.py").is_file()
        ),
        reason="neurons/miner.py or neurons/validator.py is missing",
    ),
]


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("localnet")
    cmd = [sys.executable, str(SCRIPT), "--miners", "2", "--validators", "1"]
    cmd += ["--run.max-windows", str(WINDOWS), "--hparams", "tiny", "--json", "--plot"]
    cmd += ["--run.dir", str(run_dir), "--run.timeout", str(TIMEOUT_S)]
    # A short run is little evidence for the default training-evidence test (alpha 0.01), above
    # all with two miners, where each upload's reference is the other one alone
    # (docs/scoring_record.md). On tiny an honest upload's fit z is about 1 per window in early
    # windows, and
    # 0.6-0.7 on average for this subnet's uid 1 in some runs. A miner is paid once its
    # evidence passes the bar, in full once it is twice the bar, and only while its score is a
    # tenth of the best. This run checks that the pipeline pays both honest miners, not the
    # test's power: it loosens the test to alpha 0.45 (bar 0.13), measures every trained
    # sequence of a tiny upload (48 own, 8 per page) against 72 control ones and runs 14
    # windows (13 with uploads): one CI run of 10 windows left uid 1 unproven from its second
    # window on (2026-12-02). The validator's own rules, fed per-window z ~ N(mu, 1) (python
    # scripts/bench_evidence_power.py --mu 0.5,0.7,1.0 --windows 9,13 --alpha 0.45), leave
    # such a miner without weight in 3.8% (mu 0.5) and 0.8% (mu 0.7) of 9-window runs, and in
    # 2.1% and 0.3% of 13-window runs. The defaults' outcome is measured by the README run (3
    # miners, 16 windows) and scripts/bench_incentives.py.
    judge = "--judge.alpha 0.45 --eval.own-seqs 48 --eval.control-seqs 72"
    cmd += [f"--validator.args={judge}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S + 90)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, (
        f"stdout must be one JSON object:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    s = json.loads(lines[0])
    s["_stderr"] = proc.stderr[-6000:]
    s["_rc"] = proc.returncode
    return s


def _why(s: dict) -> str:
    brief = {k: v for k, v in s.items() if k not in ("nodes", "windows", "epochs", "_stderr")}
    rejected = {w["window"]: w.get("rejected") for w in s.get("windows", []) if w.get("rejected")}
    decided = "\n".join(
        f"  window {w['window']}: " + "; ".join((w.get("decisions") or {}).values())
        for w in s.get("windows", [])
    )
    return (
        f"\nsummary: {json.dumps(brief)}\nrejected: {rejected}\ndecisions:\n{decided}\n"
        f"{s['_stderr'][-3000:]}"
    )


def test_run_completes_its_windows(summary):
    assert summary["stop_reason"] == "windows", _why(summary)
    assert summary["windows_completed"] >= WINDOWS, _why(summary)
    assert summary["crashed"] == [], _why(summary)
    assert summary["_rc"] == 0, _why(summary)


def test_every_upload_landed(summary):
    assert summary["uploads_missing"] == 0, _why(summary)
    for w in summary["windows"][1:]:  # the first window may have started before the miners
        assert w["uploads_seen"] == summary["miners"], _why(summary)


def test_honest_uploads_are_accepted(summary):
    assert summary["uploads_rejected"] == 0, _why(summary)


def test_validator_set_weights_and_a_proven_miner_earns(summary):
    assert summary["weights_set"] >= 1, _why(summary)
    assert summary["seconds_to_first_weights"] is not None, _why(summary)
    assert set(summary["miner_incentive"]) and len(summary["miner_incentive"]) == 2, _why(summary)
    assert any(v > 0 for v in summary["miner_incentive"].values()), _why(summary)


def test_both_honest_miners_earn(summary):
    assert all(v > 0 for v in summary["miner_incentive"].values()), _why(summary)


def test_heldout_loss_goes_down(summary):
    assert summary["loss_start"] is not None and summary["loss_end"] is not None, _why(summary)
    assert summary["loss_end"] < summary["loss_start"], _why(summary)


def test_all_nodes_in_sync(summary):
    assert summary["in_sync"] is True, _why(summary)
    assert Path(summary["plot"]).is_file()


def test_validators_stop_cleanly_on_sigterm(summary):
    codes = {n["name"]: n["exit_code"] for n in summary["nodes"] if n["role"] == "validator"}
    assert codes and all(code == 0 for code in codes.values()), _why(summary)


def test_each_miner_reads_the_validators_verdict_on_its_upload(summary):
    """The validator publishes its verdicts (validator/leader.py); each miner reads its own
    entry after its next window and keeps it in its status (miner/verdicts.py)."""
    validators = {n["hotkey"] for n in summary["nodes"] if n["role"] == "validator"}
    for node in summary["nodes"]:
        if node["role"] != "miner":
            continue
        got = node.get("verdicts") or {}
        assert node.get("verdicts_window") is not None and set(got) == validators, _why(summary)
        kinds = ("credited", "unproven", "unattributed", "not_evaluated")
        assert all(v.startswith(kinds) for v in got.values()), (node["name"], got)
