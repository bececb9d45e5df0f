"""The record of what an upload took out of error feedback: a miner stopped between its upload's
PUT and the window's save restarts with those entries cleared, not sent a second time."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import torch

from template.hparams import hparams_hash, load_hparams
from template.miner import sent_records, startup
from template.miner.state import Position, Snapshot, save_state
from template.miner.trainer import WindowResult
from template.training.compression import CompressedDelta, CompressedTensor, Compressor
from template.training.model import build_model
from tests.localnet.test_fault_state import Bucket, make_miner

HP = load_hparams("tiny")
HOTKEY = "5" + "F" * 47


def _sent(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> CompressedDelta:
    comp = Compressor(HP.compression)
    g = torch.Generator().manual_seed(seed)
    return comp.compress({n: torch.randn(s, generator=g) for n, s in shapes.items()})


def _indices(sent: CompressedDelta) -> dict[str, np.ndarray]:
    return {n: t.indices.numpy() for n, t in sent.tensors.items()}


# --- the record file ------------------------------------------------------------------------
def test_a_record_round_trips_and_bad_files_are_removed(tmp_path, caplog):
    sent = _sent({"a": (64, 128), "b": (300,)})
    sent_records.keep(tmp_path, 7, sent)
    got = sent_records.kept(tmp_path, {"a": 64 * 128, "b": 300})
    assert list(got) == [7] and got[7].window == 7 and got[7].count == 2 * 40 + 3
    for n, idx in _indices(sent).items():
        assert np.array_equal(got[7].indices[n], idx) and got[7].indices[n].dtype == np.int64
    data = (tmp_path / "sent" / "7.sent").read_bytes()
    assert len(data) < 83 * 4 + 300  # indices only (int32 here), no values

    folder = tmp_path / "sent"
    (folder / "notes.txt").write_text("not a record")  # another name: left alone
    (folder / "x.sent").write_bytes(data)  # not <window>.sent
    (folder / "07.sent").write_bytes(data)
    (folder / "\u00b2.sent").write_bytes(data)
    (folder / "8.sent").write_bytes(data)  # holds window 7
    (folder / "9.sent").write_bytes(data[:-3])  # truncated
    (folder / "10.sent").write_bytes(b"\x80\x04pickle" + data)  # not this format
    (folder / "11.sent").write_bytes(sent_records.encode(11, sent))
    with caplog.at_level(logging.WARNING):
        got = sent_records.kept(tmp_path, {"a": 64 * 128, "b": 300})
    assert sorted(got) == [7, 11]
    assert sorted(p.name for p in folder.iterdir()) == ["11.sent", "7.sent", "notes.txt"]
    assert caplog.text.count("not a sent record of this miner") == 6

    # a record for another model (a tensor it lacks, or of another size) is removed too
    assert sent_records.kept(tmp_path, {"a": 64 * 128, "b": 301}) == {}
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_indices_outside_their_tensor_and_bad_headers_are_refused():
    sent = _sent({"a": (8192,)})
    data = sent_records.encode(3, sent)
    assert sent_records.decode(data).count == 80
    t = sent.tensors["a"]
    bad = CompressedDelta({"a": CompressedTensor((100,), t.indices, t.codes, t.codebook)})
    for blob in [sent_records.encode(3, bad), data[:8], data + b"\0", b"", data[:12] + b"[]"]:
        try:
            sent_records.decode(blob)
        except sent_records.RecordError:
            continue
        raise AssertionError(f"accepted {blob[:40]!r}")


def test_forget_through_and_settle(tmp_path, caplog):
    shapes = {"a": (8192,)}
    for w in (3, 4, 6):
        sent_records.keep(tmp_path, w, _sent(shapes, seed=w))
    sent_records.forget_through(tmp_path, 3)
    assert sorted(sent_records.kept(tmp_path)) == [4, 6]
    cleared = []
    with caplog.at_level(logging.WARNING):
        done = sent_records.settle(tmp_path, 4, {"a": 8192}, cleared.append)
    assert done == [6] and len(cleared) == 1
    assert np.array_equal(cleared[0]["a"], _indices(_sent(shapes, seed=6))["a"])
    assert (
        "window 6: stopped after its upload was sent but before its state was saved" in caplog.text
    )
    assert sorted(sent_records.kept(tmp_path)) == [6]  # 4: that state holds it; 6 until a save


# --- a miner stopped between its PUT and its save ----------------------------------------------
def _model_and_error(seed: int = 0):
    model = build_model(HP.model)
    names = [n for n, _ in model.named_parameters()][:2]
    shapes = {n: p.shape for n, p in model.named_parameters() if n in names}
    g = torch.Generator().manual_seed(seed)
    error = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    delta = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    return {n: p.detach().clone() for n, p in model.named_parameters()}, error, delta


def _miner(tmp_path: Path, bucket, model, error, *, killed: bool):
    m = make_miner(tmp_path, bucket, error)
    m.position = Position(hparams_hash(HP), HOTKEY, applied_through=-1)

    async def save():
        if killed:  # the process dies here: nothing after the PUT reaches the disk
            raise RuntimeError("killed")
        save_state(tmp_path, Snapshot(m.position, model, {}, m.compressor.state_dict()))

    m.save = save
    return m


def _restart(tmp_path: Path, monkeypatch, bucket=None) -> dict[str, torch.Tensor]:
    """Start-up from ``tmp_path``; ``bucket``: the miner's own, asked which uploads landed."""

    async def catch_up(model, directory, hp, *, applied_through, target, progress):
        return applied_through

    monkeypatch.setattr(startup, "catch_up", catch_up)
    _, _, _, ef = asyncio.run(
        startup.initial_model(HP, None, HOTKEY, tmp_path, 3, "cpu", bucket=bucket)
    )
    return ef


def _window(delta, w: int = 0) -> WindowResult:
    return WindowResult(window=w, delta=delta, pages=[0], steps=1, tokens=10, train_seconds=1.0)


class SeesItsRecord(Bucket):
    """A bucket that checks the record is on disk when the PUT goes out."""

    def __init__(self, state_dir: Path, **kw):
        super().__init__(**kw)
        self.state_dir, self.recorded = state_dir, []

    async def put_bytes(self, key, blob, deadline=None):
        self.recorded.append(sorted(sent_records.kept(self.state_dir)))
        return await super().put_bytes(key, blob, deadline)


def test_a_miner_killed_after_its_put_restarts_without_the_sent_entries(
    tmp_path, monkeypatch, caplog
):
    model, e0, delta = _model_and_error()
    pos = Position(hparams_hash(HP), HOTKEY, applied_through=-1)
    save_state(tmp_path, Snapshot(pos, model, {}, e0))  # the state before window 0

    bucket = SeesItsRecord(tmp_path, fail=False)
    m = _miner(tmp_path, bucket, model, e0, killed=True)
    with caplog.at_level(logging.WARNING):
        asyncio.run(m.finish_window(_window(delta)))
    assert m.position.uploads_done == 1 and bucket.recorded[0] == [0]
    sent = m._sent[1]

    stored = Bucket(fail=False, stored=True)  # the PUT landed
    ef = _restart(tmp_path, monkeypatch, stored)  # from the state of before window 0
    assert stored.heads == 1
    assert "window 0: stopped after its upload was sent" in caplog.text
    for n, e in e0.items():
        idx = sent.tensors[n].indices
        assert idx.numel() > 0 and bool((ef[n].view(-1)[idx] == 0).all())
        rest = torch.ones(e.numel(), dtype=torch.bool)
        rest[idx] = False
        assert torch.equal(ef[n].view(-1)[rest], e.view(-1)[rest])  # unchanged elsewhere
    # the record stays until a save: a second stop before it clears the entries again
    second = _restart(tmp_path, monkeypatch)
    assert all(torch.equal(second[n], ef[n]) for n in e0)

    # the restarted miner's next window saves: the record is done
    again = _miner(tmp_path, Bucket(fail=False), model, ef, killed=False)
    asyncio.run(again.finish_window(_window(delta, w=2)))
    assert sent_records.kept(tmp_path) == {}


def test_a_normal_finish_leaves_no_record_and_restarts_with_the_saved_error(
    tmp_path, monkeypatch, caplog
):
    model, e0, delta = _model_and_error()
    m = _miner(tmp_path, SeesItsRecord(tmp_path, fail=False), model, e0, killed=False)
    asyncio.run(m.finish_window(_window(delta)))
    assert m.bucket.recorded[0] == [0] and sent_records.kept(tmp_path) == {}
    with caplog.at_level(logging.WARNING):
        ef = _restart(tmp_path, monkeypatch)
    assert "stopped after its upload" not in caplog.text
    for n, e in m.compressor.error.items():
        assert torch.equal(ef[n], e)


def test_an_upload_that_reached_nobody_deletes_its_record(tmp_path):
    """Its values go back into error feedback: a restart must not clear them."""
    model, e0, delta = _model_and_error()
    bucket = SeesItsRecord(tmp_path, fail=True, stored=False)
    m = _miner(tmp_path, bucket, model, e0, killed=True)
    asyncio.run(m.finish_window(_window(delta)))
    assert bucket.recorded[0] == [0] and m.position.uploads_missed == 1
    assert sent_records.kept(tmp_path) == {}


def test_a_record_that_cannot_be_written_does_not_stop_the_upload(tmp_path, caplog):
    model, e0, delta = _model_and_error()
    (tmp_path / "sent").write_text("a file where the folder goes")
    m = _miner(tmp_path, Bucket(fail=False), model, e0, killed=False)
    asyncio.run(m.finish_window(_window(delta)))
    assert m.position.uploads_done == 1
    assert "could not record the upload's sent entries" in caplog.text


def _killed_before_its_put(tmp_path: Path):
    """The state of before window 0, and window 0's record: the process died after writing
    it, before (or during) the PUT."""
    model, e0, delta = _model_and_error()
    pos = Position(hparams_hash(HP), HOTKEY, applied_through=-1)
    save_state(tmp_path, Snapshot(pos, model, {}, e0))
    sent = Compressor(HP.compression).compress({n: e0[n] + delta[n] for n in e0})
    sent_records.keep(tmp_path, 0, sent)
    return e0, sent


def test_an_upload_the_bucket_never_got_keeps_its_entries(tmp_path, monkeypatch, caplog):
    e0, _ = _killed_before_its_put(tmp_path)
    with caplog.at_level(logging.INFO):
        ef = _restart(tmp_path, monkeypatch, Bucket(fail=False, stored=False))
    assert all(torch.equal(ef[n], e0[n]) for n in e0)  # nothing was sent: nothing cleared
    assert "window 0: its upload is not in the bucket" in caplog.text
    assert sent_records.kept(tmp_path) == {}


def test_a_bucket_that_cannot_be_asked_counts_the_upload_as_sent(tmp_path, monkeypatch):
    """Never send a delta twice: an unknown fate clears the entries."""
    e0, sent = _killed_before_its_put(tmp_path)
    monkeypatch.setattr(startup, "SENT_CHECK_S", 0.3)
    ef = _restart(tmp_path, monkeypatch, Bucket(fail=False, stored=None))
    for n in e0:
        assert bool((ef[n].view(-1)[sent.tensors[n].indices] == 0).all())
    assert sorted(sent_records.kept(tmp_path)) == [0]
