"""Supervision: a crashed child comes back after a back-off; an operator's stop keeps it down;
one that crashes too often is given up; node commands reach a running supervisor via files."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from template.localnet.control import send, serve_requests
from template.localnet.processes import Children, start_child
from template.localnet.supervisor import BACKOFF, FAILED, STOPPED, UP, RestartPolicy, Supervisor

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def wait_exit(child) -> None:
    child.proc.wait(10)


def make(tmp_path, cmds, policy=None):
    children = Children()
    for name, cmd in cmds.items():
        children.add(start_child(name, cmd, tmp_path / f"{name}.log"))
    clock = Clock()
    events = []
    sup = Supervisor(children, policy or RestartPolicy(), lambda n, w: events.append((n, w)), clock)
    return children, sup, clock, events


def test_kill9_is_restarted_after_backoff_and_reported_recovered(tmp_path):
    children, sup, clock, events = make(tmp_path, {"miner-0": SLEEP, "miner-1": SLEEP})
    try:
        first = children.by_name("miner-1")
        os.kill(first.pid, signal.SIGKILL)
        wait_exit(first)
        assert sup.tick() == [] and sup.health["miner-1"].state == BACKOFF
        clock.t += 0.5
        assert sup.tick() == []  # back-off (1 s) not over
        clock.t += 0.6
        assert sup.tick() == ["miner-1"]
        again = children.by_name("miner-1")
        assert again.pid != first.pid and again.running()
        report = sup.report()
        assert report["miner-1"]["recovered"] and report["miner-1"]["restarts"] == 1
        assert report["miner-1"]["crashes"][0]["exit_code"] == -9
        assert not report["miner-0"]["recovered"] and report["miner-0"]["state"] == UP
        assert sup.down() == []
        assert [n for n, _ in events] == ["miner-1", "miner-1"]
    finally:
        children.stop_all(5)


def test_backoff_doubles_then_gives_up(tmp_path):
    policy = RestartPolicy(backoff_base_s=1, backoff_max_s=4, max_restarts=3, window_s=100)
    children, sup, clock, _ = make(tmp_path, {"bad": CRASH}, policy)
    delays = []
    try:
        for _ in range(5):
            wait_exit(children.by_name("bad"))
            sup.tick()
            h = sup.health["bad"]
            if h.state == FAILED:
                break
            delays.append(h.next_start - clock.t)
            clock.t = h.next_start
            sup.tick()
        assert delays == [1, 2, 4]
        assert sup.health["bad"].state == FAILED and sup.down() == ["bad"]
        assert not sup.report()["bad"]["recovered"]
    finally:
        children.stop_all(5)


def test_operator_stop_start_restart_through_the_control_folder(tmp_path):
    children, sup, clock, _ = make(tmp_path, {"miner-0": SLEEP})
    stop = threading.Event()

    def supervisor_loop():
        while not stop.is_set():
            serve_requests(tmp_path, sup)
            sup.tick()
            time.sleep(0.05)

    t = threading.Thread(target=supervisor_loop)
    t.start()
    try:
        pid0 = children.by_name("miner-0").pid
        out = send(tmp_path, "stop", "miner-0", timeout=20)
        assert out["ok"] and "stopped" in out["message"]
        clock.t += 100  # an operator's stop is never undone by the restart policy
        time.sleep(0.3)
        assert sup.health["miner-0"].state == STOPPED and not children.by_name("miner-0").running()
        assert send(tmp_path, "start", "miner-0", timeout=20)["ok"]
        pid1 = children.by_name("miner-0").pid
        assert send(tmp_path, "restart", "miner-0", timeout=20)["ok"]
        pid2 = children.by_name("miner-0").pid
        assert len({pid0, pid1, pid2}) == 3 and children.by_name("miner-0").running()
        assert not sup.report()["miner-0"]["recovered"]  # operator restarts are not crashes
        bad = send(tmp_path, "restart", "miner-9", timeout=20)
        assert not bad["ok"] and "no node 'miner-9'" in bad["message"]
        assert oct((tmp_path / "control").stat().st_mode & 0o777) == "0o700"
    finally:
        stop.set()
        t.join()
        children.stop_all(5)
