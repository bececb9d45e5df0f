"""A running local subnet (stand-in neurons) survives kill -9 of a miner and of S3, obeys
`localnet.py node restart`, keeps S3's buckets across the restart, and its summary tells the
nodes that crashed and came back from those that are down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from template.storage import StorageClient
from template.storage.config import BucketConfig
from template.storage.local_server import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

ROOT = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parent / "fake_neurons"
SCRIPT = ROOT / "scripts" / "localnet.py"

pytestmark = pytest.mark.timeout(170)


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def dataset_keys(endpoint: str) -> list[str]:
    cfg = BucketConfig(
        endpoint,
        "localnet-dataset",
        "us-east-1",
        "path",
        LOCAL_ACCESS_KEY_ID,
        LOCAL_SECRET_ACCESS_KEY,
    )

    async def ls():
        async with StorageClient(cfg) as c:
            return sorted(o.key for o in await c.list(""))

    return asyncio.run(ls())


def test_kill9_and_node_restart_survive(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--neurons.dir",
        str(FAKES),
        "--run.dir",
        str(run_dir),
        "--chain.block-time",
        "0.2",
        "--run.max-windows",
        "7",
        "--run.timeout",
        "150",
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Ctrl-C stops" in ln for ln in err_lines), 90, "the subnet to start")
        net = json.loads((run_dir / "network.json").read_text())
        before = dataset_keys(net["s3_endpoint"])
        assert before
        pids = json.loads((run_dir / "pids.json").read_text())
        os.kill(pids["miner-1"], signal.SIGKILL)
        os.kill(pids["s3"], signal.SIGKILL)
        wait_for(
            lambda: (
                json.loads((run_dir / "pids.json").read_text())["s3"] != pids["s3"]
                and json.loads((run_dir / "pids.json").read_text())["miner-1"] != pids["miner-1"]
            ),
            30,
            "the supervisor to restart miner-1 and s3",
        )
        # S3 came back with every object (write journal replayed before the port opened)
        assert wait_for(lambda: _try(dataset_keys, net["s3_endpoint"]), 20, "s3") == before
        node = subprocess.run(
            [sys.executable, str(SCRIPT), "node", "restart", "miner-0", "--run.dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert node.returncode == 0 and "miner-0 restarted" in node.stdout, node.stderr
        status = subprocess.run(
            [sys.executable, str(SCRIPT), "node", "status", "--run.dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "miner-1" in status.stdout and "crashed and came back" in status.stdout
        out, _ = proc.communicate(timeout=140)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(err_lines)[-3000:]
    s = json.loads(out.strip().splitlines()[-1])
    assert s["ok"] and s["stop_reason"] == "windows" and s["crashed"] == []
    assert s["recovered"] == ["miner-1", "s3"] and s["down"] == []
    sup = s["supervision"]
    assert sup["miner-1"]["crashes"][0]["exit_code"] == -9 and sup["miner-1"]["restarts"] == 1
    assert sup["miner-0"]["starts"] == 2 and not sup["miner-0"]["recovered"]
    assert any("[supervisor] miner-1 restarted after a crash" in ln for ln in err_lines)


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - not up yet
        return None
