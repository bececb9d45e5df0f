"""The miner's local state: what lets a restart resume instead of starting over.

Saved after every window: the global model (fp32), the AdamW moments and the error-feedback
buffers in one safetensors file, plus a JSON manifest (window position, counters, the file's
sha256). The tensor file gets a fresh name each save and the manifest is replaced last with
``os.replace``, so a crash at any point leaves either the old or the new state, never a mix.
Nothing is unpickled: ``torch.load`` is never used.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from template.fileio import file_sha256, fsync_write

logger = logging.getLogger(__name__)

MANIFEST = "miner_state.json"
FORMAT = 1


class StateError(ValueError):
    """The local state is missing, corrupted or from another run: rebuild it from the leader."""


@dataclass
class Position:
    """Where the miner is: the JSON part of the state."""

    hparams_hash: str
    hotkey: str
    applied_through: int  # last window whose aggregate is in the global model (-1: none)
    last_window: int = -1  # last window trained and handled (uploaded or missed)
    uploads_done: int = 0
    uploads_missed: int = 0
    windows_behind: int = 0  # windows trained from a model without the previous aggregate
    train_seconds_total: float = 0.0
    wall_seconds_total: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass
class Snapshot:
    """Everything saved: the position plus tensors, all on CPU."""

    position: Position
    model: dict[str, torch.Tensor]  # global model parameters by name (fp32)
    optimizer: dict[str, torch.Tensor]  # see optimizer_tensors
    error: dict[str, torch.Tensor]  # error-feedback buffers by parameter name


def save_state(folder: Path, snap: Snapshot) -> Path:
    """Write ``snap`` atomically under ``folder``; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in snap.model.items()}
    tensors |= {f"opt.{k}": v for k, v in snap.optimizer.items()}
    tensors |= {f"ef.{k}": v for k, v in snap.error.items()}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    name = f"miner_state.{snap.position.last_window}.{os.getpid()}.safetensors"
    tmp = folder / (name + ".tmp")
    save_file(tensors, str(tmp))
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    manifest = {
        "format": FORMAT,
        "position": asdict(snap.position),
        "tensors": {"file": name, "sha256": file_sha256(folder / name)},
    }
    tmp_manifest = folder / (MANIFEST + ".tmp")
    fsync_write(tmp_manifest, json.dumps(manifest, sort_keys=True).encode())
    os.replace(tmp_manifest, folder / MANIFEST)
    for old in folder.glob("miner_state.*.safetensors*"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / MANIFEST


def load_state(folder: Path, *, hparams_hash: str, hotkey: str) -> Snapshot:
    """Read and verify the state; StateError says why it cannot be used."""
    path = folder / MANIFEST
    if not path.is_file():
        raise StateError(f"no local state in {folder}")
    try:
        manifest = json.loads(path.read_text())
        position = Position(**manifest["position"])
        file, digest = manifest["tensors"]["file"], manifest["tensors"]["sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise StateError(f"{path} is not a valid manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise StateError(f"{path} has format {manifest.get('format')}, expected {FORMAT}")
    if position.hparams_hash != hparams_hash:
        raise StateError("local state belongs to another run (hparams differ)")
    if position.hotkey != hotkey:
        raise StateError("local state belongs to another hotkey")
    tensor_path = folder / str(file)
    if "/" in str(file) or not tensor_path.is_file():
        raise StateError(f"{tensor_path} is missing")
    if file_sha256(tensor_path) != digest:
        raise StateError(f"{tensor_path} does not match its sha256 (corrupted)")
    try:
        tensors = load_file(str(tensor_path))
    except Exception as e:  # noqa: BLE001 - any parse failure means corrupted
        raise StateError(f"{tensor_path} cannot be read ({e})") from None
    snap = Snapshot(position, {}, {}, {})
    for key, t in tensors.items():
        kind, _, name = key.partition(".")
        target = {"model": snap.model, "opt": snap.optimizer, "ef": snap.error}.get(kind)
        if target is None or not name:
            raise StateError(f"{tensor_path} holds an unknown tensor {key!r}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise StateError(f"{tensor_path}: tensor {key!r} is not finite")
        target[name] = t
    return snap


# --- the AdamW state as plain tensors (no pickle) -------------------------------------
def optimizer_tensors(opt: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    """AdamW moments by parameter name: ``<name>.exp_avg``, ``.exp_avg_sq``, ``.step``.

    ``names`` maps ``id(param)`` to its name.
    """
    out: dict[str, torch.Tensor] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            param_state = opt.state.get(p)
            if not param_state:
                continue
            name = names[id(p)]
            for k in ("exp_avg", "exp_avg_sq"):
                out[f"{name}.{k}"] = param_state[k].detach().to("cpu", copy=True)
            step = param_state["step"]
            out[f"{name}.step"] = torch.as_tensor(step, dtype=torch.float32).reshape(1).cpu()
    return out


def load_optimizer_tensors(
    opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter], tensors: dict
) -> None:
    """Restore what ``optimizer_tensors`` saved (StateError on shape mismatches)."""
    for name, p in params.items():
        avg, sq, step = (tensors.get(f"{name}.{k}") for k in ("exp_avg", "exp_avg_sq", "step"))
        if avg is None:
            continue
        if sq is None or step is None or avg.shape != p.shape or sq.shape != p.shape:
            raise StateError(f"optimizer state of {name} is incomplete or has the wrong shape")
        opt.state[p] = {
            "step": torch.tensor(float(step.reshape(-1)[0])),
            "exp_avg": avg.to(p.device, torch.float32).clone(),
            "exp_avg_sq": sq.to(p.device, torch.float32).clone(),
        }
