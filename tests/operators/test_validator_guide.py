"""docs/validator.md's rehearsal block, run as written (bash) against a dev chain and a local S3:
btcli wallet, funding, registration, stake and the permit, the owner's dataset bucket, the
validator's bucket and keys, the validator with the guide's start flags until its first window
is done, then SIGTERM (a clean stop, exit 0). Then what the guide says it shows is there: the
summary log line of section 6, every status.json key of section 6 and every metric of section
7. Slow (about 40 s): marked ``slow``."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .guide import ROOT, rehearsal, section, subsection

DOC = "docs/validator.md"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not (BIN / "seed-validator").is_file() or shutil.which("curl") is None,
        reason="console scripts not installed in this venv (scripts/setup.sh), or no curl",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _documented_log_line() -> re.Pattern:
    """Section 6's example summary line, its numbers and booleans as patterns."""
    example = re.search(r"^```\n(window .*)\n```", section(DOC, 6), flags=re.M).group(1)
    pattern = re.escape(example)
    pattern = re.sub(r"\d+(?:\\\.\d+)?", r"\\d+(?:\\.\\d+)?", pattern)
    return re.compile(pattern.replace("True", "(?:True|False)"))


def _documented_status_keys() -> set[str]:
    body = subsection(DOC, "status.json")
    return set(re.findall(r"`([a-z_]+)`", body))


def _documented_metrics() -> set[str]:
    return set(re.findall(r"`(template_[a-z_]+)", section(DOC, 7)))


def test_the_validator_guide_runs_as_written(tmp_path):
    work = tmp_path / "work"  # the repository root as the block sees it: docs/, README, deploy/
    shutil.copytree(ROOT / "docs", work / "docs")
    shutil.copytree(ROOT / "deploy", work / "deploy")
    shutil.copy(ROOT / "README.md", work / "README.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPLATE_S3_")}
    env.update(
        PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""),
        HOME=str(tmp_path),
        CHAIN_PORT=str(_free_port()),
        S3_PORT=str(_free_port()),
        METRICS_PORT=str(_free_port()),
        PYTHONPATH=str(ROOT),  # the checkout's package (setup.sh installs it editable)
    )
    script = "set -euo pipefail\n" + rehearsal(DOC)
    proc = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status["role"] == "validator" and status["window"] >= 0, status
    assert status["is_leader"] and status["in_sync"] and math.isfinite(status["heldout_loss"])
    missing = sorted(_documented_status_keys() - set(status))
    assert not missing, f"{DOC} documents status.json keys it does not have: {missing}"
    served = set(re.findall(r"^(?:# (?:HELP|TYPE) )?(template_[a-z_]+)", proc.stdout, re.M))
    missing = sorted(m for m in _documented_metrics() if m not in served)
    assert not missing, f"{DOC} documents metrics the validator does not serve: {missing}"
    line = _documented_log_line()
    assert line.search(proc.stderr), f"no log line like section 6's ({line.pattern})"
