"""The sharded miner's hooks into the single-process code paths."""

from __future__ import annotations

import pytest

from template.parallel.miner import CompressedMapping, SentCompressor, uploads_of
from template.protocol.aggregation import apply_uploads
from template.protocol.window_apply import WindowApplier
from template.training.compression import CompressedDelta


def test_the_outer_step_exposes_its_uploads():
    import functools
    import inspect

    step = functools.partial(apply_uploads, uploads=["u1", "u2"], hp=None)
    assert uploads_of(step) == ["u1", "u2"]
    with pytest.raises(TypeError):
        uploads_of(lambda m: 0)
    # the window-apply path builds its step that way (the sharded model depends on it)
    assert "functools.partial(apply_uploads, uploads=" in inspect.getsource(WindowApplier.apply)


def test_the_loop_gets_the_already_compressed_delta():
    comp = CompressedDelta({})
    delta = CompressedMapping(comp)
    assert SentCompressor(trainer=None).compress(delta) is comp
    assert dict(delta) == {} and SentCompressor(trainer=None).state_dict() == {}


def test_a_sharded_restart_clears_what_an_upload_sent_after_the_saved_state(tmp_path, monkeypatch):
    """As the single-process miner (tests/miner/test_sent_records.py): each rank zeroes its
    part of the error feedback at the sent record's indices. The command carries names and
    counts only; the indices reach rank 1 as tensor broadcasts (a stand-in here)."""
    import asyncio
    import json
    from functools import partial
    from types import SimpleNamespace

    import numpy as np
    import torch

    from template.hparams import load_hparams
    from template.miner import sent_records
    from template.miner.state import Position
    from template.parallel.checkpoint import MANIFEST
    from template.parallel.miner import _restore
    from template.parallel.shard import flat_range
    from template.parallel.trainer import ShardedTrainer
    from template.training.compression import Compressor

    shapes = {"a": (130, 64), "b": (300,)}
    g = torch.Generator().manual_seed(0)
    comp = Compressor(load_hparams("tiny").compression)
    sent = {
        w: comp.compress({n: torch.randn(s, generator=g) for n, s in shapes.items()})
        for w in (4, 5)
    }
    for w, s in sent.items():
        sent_records.keep(tmp_path, w, s)
    saved = {"hparams_hash": "h", "hotkey": "hk", "last_window": 4, "applied_through": 3}
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 1, "position": saved}))

    full = {n: torch.randn(s, generator=g).view(-1) for n, s in shapes.items()}
    ranks = []
    for r in range(2):
        ranks.append(
            SimpleNamespace(
                ctx=SimpleNamespace(rank=r, world=2, is_main=r == 0, device=torch.device("cpu")),
                shapes=shapes,
                compressor=SimpleNamespace(
                    error={
                        n: full[n][
                            flat_range(shapes[n], r, 2).start : flat_range(shapes[n], r, 2).stop
                        ].clone()
                        for n in shapes
                    }
                ),
            )
        )

    for rank in ranks:  # the trainer's own method on the stand-in rank
        rank._error_shard = partial(ShardedTrainer._error_shard, rank)

    commands, sending, wire = [], [True], []

    def broadcast(t, src):  # rank 0's tensors, received in the same order by rank 1
        assert src == 0 and t.dtype == torch.int64
        if sending[0]:
            wire.append(t.clone())
        else:
            t.copy_(wire.pop(0))

    monkeypatch.setattr(torch.distributed, "broadcast", broadcast)
    ranks[0]._cmd = lambda op, *args: (
        commands.append((op, args)),
        getattr(ShardedTrainer, f"_do_{op}")(ranks[0], *args),
    )

    def clear_entries(indices):  # rank 0's command, then rank 1 following it
        sending[0] = True
        ShardedTrainer.clear_entries(ranks[0], indices)
        op, args = commands[-1]
        assert op == "clear_entries" and args == (
            [(n, len(i)) for n, i in indices.items()],
        )  # the command itself carries no index arrays
        sending[0] = False
        ShardedTrainer._do_clear_entries(ranks[1], *args)
        assert wire == []

    trainer = SimpleNamespace(
        shapes=shapes,
        applied_through=3,
        load=lambda folder, parts: None,
        clear_entries=clear_entries,
    )
    miner = SimpleNamespace(
        bucket=None,  # not asked (tests/miner/test_sent_records.py asks one)
        hotkey="hk",
        settings=SimpleNamespace(state_dir=tmp_path),
        position=Position("h", "hk", applied_through=3),
    )
    asyncio.run(_restore(trainer, miner))
    assert miner.position.last_window == 4  # window 4 is not trained and sent again
    for n in shapes:
        got = torch.cat([rank.compressor.error[n] for rank in ranks])
        idx = sent[5].tensors[n].indices
        want = full[n].clone()
        want[idx] = 0.0
        assert idx.numel() and torch.equal(got, want), n  # window 4 is in the saved state
    start = flat_range(shapes["a"], 1, 2).start
    assert (sent[5].tensors["a"].indices >= start).any()  # rank 1 had entries to clear
    assert [op for op, _ in commands] == ["clear_entries"]
    assert sorted(sent_records.kept(tmp_path)) == [5]
    assert np.array_equal(sent_records.kept(tmp_path)[5].indices["b"], sent[5].tensors["b"].indices)
