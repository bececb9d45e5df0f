"""Rank 0's commands to the other ranks: whole, in order, and none after the release."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from template.parallel import dist as pdist
from template.parallel.dist import RankCommands, RankCommandsStopped


class Recorder(RankCommands):
    """Rank 0 whose broadcasts and command bodies land in one log."""

    def __init__(self, log: list):
        self.ctx = SimpleNamespace(is_main=True)
        self.log = log
        self.started, self.release = threading.Event(), threading.Event()

    def _do_slow(self) -> str:
        self.started.set()
        assert self.release.wait(10)
        self.log.append("slow done")
        return "ok"

    def _do_quick(self) -> str:
        self.log.append("quick done")
        return "quick"


@pytest.fixture
def log(monkeypatch) -> list:
    out: list = []
    monkeypatch.setattr(pdist, "broadcast_object", lambda obj, ctx: out.append(obj) or obj)
    return out


def test_the_release_waits_for_the_command_in_flight(log):
    cmds = Recorder(log)
    worker = threading.Thread(target=cmds._cmd, args=("slow",))
    worker.start()
    assert cmds.started.wait(10)
    stopper = threading.Thread(target=cmds.shutdown)
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive()  # held back while "slow" runs its collectives
    cmds.release.set()
    worker.join(10)
    stopper.join(10)
    # a "stop" between "slow"'s broadcast and its body let a follower leave mid-collective
    assert log == [("slow", ()), "slow done", ("stop", ())]


def test_no_command_goes_out_after_the_release(log):
    cmds = Recorder(log)
    assert cmds._cmd("quick") == "quick"
    cmds.shutdown()
    cmds.shutdown()  # once
    with pytest.raises(RankCommandsStopped, match="'quick' after the other ranks"):
        cmds._cmd("quick")
    assert log == [("quick", ()), "quick done", ("stop", ())]


def test_followers_run_commands_without_broadcasting(log):
    cmds = Recorder(log)
    cmds.ctx = SimpleNamespace(is_main=False)
    assert cmds._cmd("quick") == "quick"
    cmds.shutdown()
    assert log == ["quick done"]
