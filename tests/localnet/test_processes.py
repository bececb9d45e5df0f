"""Child processes: own log file, stopped with their whole group, stubborn ones killed."""

from __future__ import annotations

import os
import sys
import time

import pytest

from template.localnet.processes import Children, start_child, wait_for_http

pytestmark = pytest.mark.timeout(60)

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("grandchild", child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _grandchild(log) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("grandchild "):
                return int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError("the child never started its own child")


def test_stubborn_child_and_its_children_are_killed(tmp_path):
    log = tmp_path / "stubborn.log"
    child = start_child("stubborn", [sys.executable, "-c", STUBBORN], log)
    grandchild = _grandchild(log)
    code = child.stop(timeout=1.0)
    assert child.killed and code == -9
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert log.read_text().startswith("$ ")  # the command heads its log


def test_stop_all_stops_in_order_and_reports_exits(tmp_path):
    children = Children()
    for name in ("chain", "node"):
        children.add(
            start_child(
                name,
                [sys.executable, "-c", "import time; time.sleep(60)"],
                tmp_path / f"{name}.log",
            )
        )
    quick = children.add(start_child("quick", [sys.executable, "-c", "pass"], tmp_path / "q.log"))
    quick.proc.wait(10)
    assert [c.name for c in children.exited()] == ["quick"]
    children.stop_all(timeout=5, first=lambda c: c.name == "node")
    assert all(not c.running() for c in children.items)
    assert not any(c.killed for c in children.items)  # SIGTERM was enough


def test_wait_for_http_reports_a_dead_child(tmp_path):
    child = start_child(
        "dies", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path / "d.log"
    )
    with pytest.raises(RuntimeError, match="exited with code 3"):
        wait_for_http("http://127.0.0.1:9/", child, timeout=10)
