"""docs/miner.md's rehearsal block, run as written (bash) against a dev chain and a local S3:
install, dataset, wallet, funding, registration, bucket, keys in the environment, the miner for
two windows, its status file. Slow (about a minute): marked ``slow`` like the e2e run."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not (BIN / "seed-miner").is_file(),
        reason="console scripts not installed in this venv: run scripts/setup.sh",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _block() -> str:
    text = (ROOT / "docs/miner.md").read_text()
    block = text.split("<!-- rehearsal -->\n```bash\n", 1)[1].split("```\n<!-- /rehearsal -->")[0]
    return "set -euo pipefail\n" + block


def test_the_miner_guide_runs_as_written(tmp_path):
    work = tmp_path / "work"  # stands for the repository root: the block reads docs/, README
    shutil.copytree(ROOT / "docs", work / "docs")
    shutil.copytree(ROOT / "deploy", work / "deploy")  # deploy/dataset.toml.example
    shutil.copy(ROOT / "README.md", work / "README.md")
    bin_dir = str(BIN)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CHAIN_PORT": str(_free_port()),
        "S3_PORT": str(_free_port()),
        "METRICS_PORT": str(_free_port()),
    }
    env = {k: v for k, v in env.items() if not k.startswith("TEMPLATE_S3_")}
    env["PYTHONPATH"] = str(ROOT)  # the checkout's package (setup.sh installs it editable)
    proc = subprocess.run(
        ["bash", "-c", _block()], cwd=work, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status["role"] == "miner" and status["uploads_done"] >= 1, status
    assert status["uploads_missed"] <= 1 and status["in_sync"], status
    documented = (ROOT / "docs/miner.md").read_text().split("### status.json\n", 1)[1]
    documented = re.split(r"\n##+ ", documented, maxsplit=1)[0]  # up to the next heading
    documented = set(re.findall(r"`([a-z_]+)`", documented)) - {"cat"}
    assert documented <= set(status), f"documented, not in status.json: {documented - set(status)}"
