"""After a window: a void window sends nothing, and no failure after the upload stops the miner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from template.hparams import load_hparams
from template.miner import seal_keys
from template.miner.loop import Miner
from template.miner.trainer import WindowResult
from template.storage import TransientStorageError
from tests.localnet.test_fault_state import make_miner

HP = load_hparams("tiny")
SHAPES = {"a": (64, 32), "b": (128,)}


class Bucket:
    """The PUT fails; asking whether it landed anyway raises what the storage layer does not
    wrap (a bug, a library error): the settling of the failed upload fails."""

    def __init__(self):
        self.puts = 0

    async def put_bytes(self, key, blob, deadline=None):
        self.puts += 1
        raise TransientStorageError("PUT x: timed out")

    async def head(self, key, deadline=None):
        raise RuntimeError("unexpected error in the storage client")


def _miner(tmp_path: Path, error: dict[str, torch.Tensor]) -> Miner:
    m = make_miner(tmp_path, Bucket(), error)  # only what finish_window and _upload touch
    m.saves = 0

    async def save():
        m.saves += 1

    m.save = save
    return m


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}


def _window(delta: dict[str, torch.Tensor], void: str = "") -> WindowResult:
    return WindowResult(0, delta, pages=[0], steps=2, tokens=10, train_seconds=1.0, void=void)


def test_a_void_window_uploads_nothing(tmp_path):
    """A window whose delta lacks the work it would claim (a re-sync mid-window) is missed."""
    e0 = _tensors(0)
    m = _miner(tmp_path, e0)
    asyncio.run(m.finish_window(_window(_tensors(1), void="reset after 1 of its 2 steps")))
    assert m.bucket.puts == 0 and m.position.uploads_missed == 1 and m.saves == 1
    assert m.position.last_window == 0 and seal_keys.kept(tmp_path) == {}
    for n in SHAPES:  # nothing compressed: the error feedback is as it was
        assert torch.equal(m.compressor.error[n], e0[n])


def test_a_failure_settling_a_failed_upload_is_logged_not_fatal(tmp_path, caplog):
    """It counts as sent (never send a delta twice) and the window is still saved."""
    m = _miner(tmp_path, _tensors(0))
    asyncio.run(m.finish_window(_window(_tensors(1))))
    assert m.bucket.puts == 1 and m.position.uploads_missed == 1 and m.saves == 1
    assert "could not settle the failed upload" in caplog.text
    sent = _miner(tmp_path, _tensors(0))
    comp = sent.compressor.compress(_tensors(1))  # what the upload took out of error feedback
    assert all(torch.equal(m.compressor.error[n], sent.compressor.error[n]) for n in SHAPES)
    assert comp.tensors  # (the test can tell a put-back buffer from a sent one)


def test_a_seal_key_that_cannot_be_deleted_is_logged_not_fatal(tmp_path, monkeypatch, caplog):
    def forget(state_dir, window):
        raise PermissionError("read-only state folder")

    monkeypatch.setattr(seal_keys, "forget", forget)
    m = _miner(tmp_path, _tensors(0))
    asyncio.run(m.finish_window(_window({}, void="training failed (RuntimeError)")))
    assert m.position.uploads_missed == 1 and m.saves == 1
    assert "could not delete its seal key" in caplog.text


@pytest.mark.parametrize("void", ["", "training failed (RuntimeError)"])
def test_a_window_without_steps_is_missed(tmp_path, void):
    m = _miner(tmp_path, _tensors(0))
    asyncio.run(m.finish_window(WindowResult(0, {}, void=void)))
    assert m.bucket.puts == 0 and m.position.uploads_missed == 1
