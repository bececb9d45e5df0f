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


class SlowCollective(RankCommands):
    """Two gloo ranks: ``slow`` waits, then runs collectives (a window-apply job's shape)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def _do_slow(self) -> float:
        import time

        import torch
        import torch.distributed as dist

        time.sleep(0.3)
        t = torch.ones(256)
        for _ in range(3):
            dist.all_reduce(t)
        return float(t[0])


def _race_rank(rank: int, port: int, out: str) -> None:
    """A job's command on a worker thread while the main thread releases the followers."""
    import os
    import time

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    cmds = SlowCollective(SimpleNamespace(is_main=rank == 0))
    got: list = []
    if rank == 0:
        worker = threading.Thread(target=lambda: got.append(cmds._cmd("slow")))
        worker.start()
        time.sleep(0.1)  # the job is inside "slow"
        cmds.shutdown()
        worker.join()
    else:
        cmds.follow()
    dist.destroy_process_group()
    with open(f"{out}.{rank}", "w") as f:
        f.write(repr(got))


def _run_two_ranks(target, out: str, timeout: float) -> None:
    """Spawn ``target(rank, port, out)`` on ranks 0 and 1; both must exit cleanly in time."""
    import multiprocessing as mp

    from template.parallel.dist import free_port

    ctx, port = mp.get_context("spawn"), free_port()
    procs = [ctx.Process(target=target, args=(r, port, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    hung = [p.pid for p in procs if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert not hung and all(p.exitcode == 0 for p in procs), (hung, [p.exitcode for p in procs])


@pytest.mark.slow
def test_two_ranks_finish_when_the_release_races_a_job(tmp_path):
    """Real gloo ranks: with the release broadcast between "slow"'s broadcast and its
    collectives (before the lock) the ranks hung; now both finish and the job's result
    arrives (2 ranks x all_reduce 3 times: 8)."""
    _run_two_ranks(_race_rank, str(tmp_path / "rank"), 60)
    assert (tmp_path / "rank.0").read_text() == "[8.0]"
    assert (tmp_path / "rank.1").read_text() == "[]"


class Follower(Recorder):
    def __init__(self, log: list):
        super().__init__(log)
        self.ctx = SimpleNamespace(is_main=False, rank=1)


def test_a_follower_leaves_with_one_line_when_rank0_goes_away(monkeypatch, caplog):
    log: list = []
    sent = iter([("quick", ())])

    def receive(obj, ctx):
        for cmd in sent:
            return cmd
        raise RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1234\nmore")

    monkeypatch.setattr(pdist, "broadcast_object", receive)
    with caplog.at_level("ERROR", logger=pdist.__name__):
        Follower(log).follow()  # returns: no traceback, no hang
    assert log == ["quick done"]
    assert "rank 1: rank 0 left without releasing this rank" in caplog.text
    assert "Connection closed by peer" in caplog.text and "more" not in caplog.text


def test_an_error_inside_a_command_still_propagates(monkeypatch):
    sent = iter([("slow", ())])
    monkeypatch.setattr(pdist, "broadcast_object", lambda obj, ctx: next(sent))
    f = Follower([])
    f._do_slow = lambda: (_ for _ in ()).throw(RuntimeError("collective failed"))
    with pytest.raises(RuntimeError, match="collective failed"):
        f.follow()


CLEAR_SHAPES = {"a": (130, 64), "b": (300,), "none": (7,)}


def _clear_rank(rank: int, port: int, out: str) -> None:
    """The trainer's ``clear_entries`` on a bare error-feedback shard per gloo rank."""
    import json
    import os

    import numpy as np
    import torch
    import torch.distributed as dist

    from template.parallel.shard import flat_range
    from template.parallel.trainer import ShardedTrainer

    class ErrorShards(RankCommands):
        clear_entries = ShardedTrainer.clear_entries
        _do_clear_entries = ShardedTrainer._do_clear_entries
        _error_shard = ShardedTrainer._error_shard

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    shards = ErrorShards()
    shards.ctx = SimpleNamespace(rank=rank, world=2, is_main=rank == 0, device=torch.device("cpu"))
    shards.shapes = CLEAR_SHAPES
    rngs = {n: flat_range(s, rank, 2) for n, s in CLEAR_SHAPES.items()}
    shards.compressor = SimpleNamespace(error={n: torch.ones(r.size) for n, r in rngs.items()})
    commands: list = []
    if rank == 0:
        real = pdist.broadcast_object
        pdist.broadcast_object = lambda obj, ctx: commands.append(obj) or real(obj, ctx)
        shards.clear_entries(
            {
                "a": np.array([0, 5, 4159, 4160, 8319], dtype=np.int64),
                "none": np.array([], dtype=np.int64),
                "b": np.array([299, 10], dtype=np.int32),
                "other": np.array([1, 2], dtype=np.int64),  # not one of this model's
            }
        )
        shards.shutdown()
    else:
        shards.follow()
    dist.destroy_process_group()
    zeros = {
        n: (torch.nonzero(e == 0).view(-1) + rngs[n].start).tolist()
        for n, e in shards.compressor.error.items()
    }
    with open(f"{out}.{rank}", "w") as f:
        json.dump({"zeros": zeros, "commands": commands}, f, default=lambda a: a.tolist())


@pytest.mark.slow
def test_two_ranks_clear_their_error_feedback_from_rank0s_indices(tmp_path):
    """Real gloo ranks: the command carries tensor names and counts only; the indices reach
    rank 1 as tensor broadcasts (an empty one included) and each rank clears its part."""
    import json

    _run_two_ranks(_clear_rank, str(tmp_path / "rank"), 120)
    got = [json.loads((tmp_path / f"rank.{r}").read_text()) for r in (0, 1)]
    assert got[0]["commands"] == [
        ["clear_entries", [[["a", 5], ["none", 0], ["b", 2], ["other", 2]]]],
        ["stop", []],
    ]
    assert got[0]["zeros"] == {"a": [0, 5, 4159], "b": [10], "none": []}
    assert got[1]["zeros"] == {"a": [4160, 8319], "b": [299], "none": []}
    assert got[1]["commands"] == []
