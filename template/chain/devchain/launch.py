"""Run the dev chain as a subprocess (multi-process set-ups, kill/restart tests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DevChainProcess:
    url: str
    proc: subprocess.Popen
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> int:
        """SIGKILL at once (a crash), then reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/info", timeout=1.0) as r:
            return "node" in json.loads(r.read())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def start_devchain_process(
    db_path: str | Path,
    port: int | None = None,
    block_time: float = 0.5,
    log_path: str | Path | None = None,
    **genesis,
) -> DevChainProcess:
    """Start ``python -m template.chain.devchain`` and return once its API answers.

    ``genesis``: ``netuid``, ``dev_balance`` or any subnet hyperparameter (used only when the
    database is new).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "template.chain.devchain", "--port", str(port)]
    cmd += ["--db", str(db_path), "--block-time", str(block_time)]
    for name, value in genesis.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if log_path:
        log.close()
    handle = DevChainProcess(f"http://127.0.0.1:{port}", proc, Path(log_path) if log_path else None)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _answers(handle.url):
        if proc.poll() is not None:
            raise RuntimeError(f"dev chain exited with {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            handle.kill()
            raise RuntimeError(f"dev chain did not answer on {handle.url} within 30 s")
        time.sleep(0.05)
    return handle
