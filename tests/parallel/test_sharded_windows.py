"""Two gloo ranks: a sharded window that fails part way leaves nothing in the live weights, and
one whose live weights were reset after some of its steps (a re-sync) is void, as in the
single-process trainer (tests/miner/test_trainer.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from template.hparams import load_hparams
from template.parallel.config import ParallelConfig
from template.parallel.dist import close_distributed, init_distributed, leave_spawned_rank
from template.parallel.launch import free_port, rank_env
from template.parallel.trainer import ShardedTrainer
from template.training.model import build_model
from template.training.pages import PageDataset
from template.training.shards import TokenStream


def _at_poll(k: int, fn):
    polls = [0]

    def should_end() -> bool:
        polls[0] += 1
        if polls[0] == k:
            fn()
        return False

    return should_end


def _live_equals_global(trainer: ShardedTrainer) -> bool:
    return all(bool((d == 0).all()) for d in trainer.local_delta().values())


def _drive(trainer: ShardedTrainer) -> dict:
    """Rank 0: window 0 whole; window 1 reset after 2 steps; window 2 failing after 2 steps."""
    out = {}
    first = trainer.train_window(0, lambda: False)
    out["first"] = {"void": first.void, "sent": first.compressed is not None}
    reset = trainer.train_window(1, _at_poll(3, trainer.reset_live))
    out["reset"] = {"void": reset.void, "sent": reset.compressed is not None}

    def fail() -> None:
        raise RuntimeError("out of memory (simulated)")

    try:
        trainer.train_window(2, _at_poll(3, fail))
        out["failed"] = "no error"
    except RuntimeError as e:
        out["failed"] = str(e)
    out["clean_after_failure"] = _live_equals_global(trainer) and trainer.overlap.ahead is None
    trainer.shutdown()
    return out


def worker(rank: int, port: int, dataset: str, out: str) -> None:
    os.environ.update(rank_env(rank, 2, port))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    try:
        hp = load_hparams("tiny")
        torch.manual_seed(0)
        trainer = ShardedTrainer(
            hp,
            build_model(hp.model),
            PageDataset(TokenStream(Path(dataset)), hp),
            3,
            ctx,
            parallel=ParallelConfig(mixed_precision=False),
            max_steps=3,
        )
        if ctx.is_main:
            Path(out).write_text(json.dumps(_drive(trainer)))
        else:
            trainer.follow()
            # the followers ran the same reset: their live shards equal the global ones
            assert _live_equals_global(trainer) and trainer.overlap.ahead is None
    finally:
        dist.barrier()  # neither rank tears the group down while the other still uses it
        close_distributed()
    leave_spawned_rank()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sharded_windows_failed_and_reset_send_nothing_of_them(tmp_path, tiny_dataset):
    out = tmp_path / "out.json"
    mp.start_processes(
        worker, args=(free_port(), str(tiny_dataset), str(out)), nprocs=2, start_method="spawn"
    )
    got = json.loads(out.read_text())
    assert got["first"] == {"void": "", "sent": True}
    assert got["reset"]["sent"] is False and "after 2 of its" in got["reset"]["void"]
    assert got["failed"] == "out of memory (simulated)"
    assert got["clean_after_failure"] is True
