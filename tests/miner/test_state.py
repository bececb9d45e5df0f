"""Local state: atomic save, exact restore, corruption and foreign state detected."""

from __future__ import annotations

import json

import pytest
import torch

from template.hparams import hparams_hash
from template.miner.state import (
    MANIFEST,
    Position,
    Snapshot,
    StateError,
    load_optimizer_tensors,
    load_state,
    optimizer_tensors,
    save_state,
)
from template.training.compression import Compressor
from template.training.inner import make_optimizer, train_steps
from template.training.model import build_model

from .conftest import small_hparams

HOTKEY = "5" + "F" * 47


def _trained():
    hp = small_hparams()
    model = build_model(hp.model)
    opt = make_optimizer(model, hp.train)
    seqs = torch.randint(0, hp.model.vocab_size, (4, hp.model.seq_len + 1))
    train_steps(model, opt, [seqs, seqs], hp.train, start_step=0)
    comp = Compressor(hp.compression)
    comp.compress({n: torch.randn_like(p) for n, p in model.named_parameters()})
    return hp, model, opt, comp


def _save(tmp_path, hp, model, opt, comp, window=3):
    names = {id(p): n for n, p in model.named_parameters()}
    pos = Position(hparams_hash(hp), HOTKEY, applied_through=window - 1, last_window=window)
    snap = Snapshot(
        pos,
        {n: p.detach().clone() for n, p in model.named_parameters()},
        optimizer_tensors(opt, names),
        comp.state_dict(),
    )
    save_state(tmp_path, snap)
    return snap


def test_round_trip_restores_model_optimizer_and_error_feedback(tmp_path):
    hp, model, opt, comp = _trained()
    _save(tmp_path, hp, model, opt, comp)
    snap = load_state(tmp_path, hparams_hash=hparams_hash(hp), hotkey=HOTKEY)
    assert snap.position.last_window == 3 and snap.position.applied_through == 2
    for n, p in model.named_parameters():
        assert torch.equal(snap.model[n], p.detach())
    for n, e in comp.state_dict().items():
        assert torch.equal(snap.error[n], e)
    fresh = build_model(hp.model)
    opt2 = make_optimizer(fresh, hp.train)
    load_optimizer_tensors(opt2, dict(fresh.named_parameters()), snap.optimizer)
    by_name = dict(model.named_parameters())
    for n, p in fresh.named_parameters():
        want = opt.state[by_name[n]]
        got = opt2.state[p]
        assert torch.equal(got["exp_avg"], want["exp_avg"])
        assert torch.equal(got["exp_avg_sq"], want["exp_avg_sq"])
        assert float(got["step"]) == float(want["step"])
    # only one tensor file is kept, and no temporary files remain
    _save(tmp_path, hp, model, opt, comp, window=4)
    assert len(list(tmp_path.glob("miner_state.*.safetensors"))) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupted_tensor_file_is_detected(tmp_path):
    hp, model, opt, comp = _trained()
    _save(tmp_path, hp, model, opt, comp)
    (path,) = tmp_path.glob("miner_state.*.safetensors")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="sha256"):
        load_state(tmp_path, hparams_hash=hparams_hash(hp), hotkey=HOTKEY)


def test_bad_manifest_missing_file_and_foreign_state_are_detected(tmp_path):
    hp, model, opt, comp = _trained()
    run = hparams_hash(hp)
    with pytest.raises(StateError, match="no local state"):
        load_state(tmp_path, hparams_hash=run, hotkey=HOTKEY)
    _save(tmp_path, hp, model, opt, comp)
    with pytest.raises(StateError, match="another run"):
        load_state(tmp_path, hparams_hash="0" * 64, hotkey=HOTKEY)
    with pytest.raises(StateError, match="another hotkey"):
        load_state(tmp_path, hparams_hash=run, hotkey="5" + "G" * 47)
    manifest = tmp_path / MANIFEST
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(StateError, match="not a valid manifest"):
        load_state(tmp_path, hparams_hash=run, hotkey=HOTKEY)
    manifest.write_text(text)
    (path,) = tmp_path.glob("miner_state.*.safetensors")
    path.unlink()
    with pytest.raises(StateError, match="missing"):
        load_state(tmp_path, hparams_hash=run, hotkey=HOTKEY)
    data = json.loads(text)
    assert data["tensors"]["sha256"] and data["position"]["hotkey"] == HOTKEY
