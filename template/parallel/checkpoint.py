"""Sharded local state with ``torch.distributed.checkpoint`` (DCP): every rank writes its shards.

Layout under the state folder::

    sharded.<n>/            DCP files: the live model, AdamW state, global copy, error feedback
    sharded_state.json      rank 0's manifest: format, world size, folder name, the position

The DCP folder gets a fresh name each save and the manifest is replaced last (``os.replace``)
after a barrier, so a crash leaves the old or the new state, never a mix. DCP stores global
shapes and offsets and reshards on load (N ranks -> M ranks: untested). Nothing is unpickled
from anyone else: DCP's metadata file is written by this node's own rank 0.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor, Shard

from template.fileio import fsync_write

if TYPE_CHECKING:
    from .trainer import ShardedTrainer

MANIFEST = "sharded_state.json"
FORMAT = 1


class ShardedStateError(ValueError):
    """No usable sharded state: start from the leader's checkpoint instead."""


def _as_dtensor(t: torch.Tensor, shape: tuple[int, ...], trainer: ShardedTrainer) -> DTensor:
    row = math.prod(shape[1:]) if len(shape) > 1 else 1
    local_shape = (t.numel() // row, *shape[1:]) if shape else ()
    stride = tuple(math.prod(shape[i + 1 :]) for i in range(len(shape)))
    return DTensor.from_local(
        t.reshape(local_shape),
        trainer.ctx.mesh,
        [Shard(0)],
        run_check=False,
        shape=torch.Size(shape),
        stride=stride,
    )


def _state(trainer: ShardedTrainer) -> dict:
    names = sorted(trainer.shapes)
    ef = trainer.compressor.error
    return {
        "model": get_model_state_dict(trainer.model),
        "optim": get_optimizer_state_dict(trainer.model, trainer.optimizer),
        "global": {
            n: _as_dtensor(trainer.global_shards[n], trainer.shapes[n], trainer) for n in names
        },
        "ef": {n: _as_dtensor(ef[n], trainer.shapes[n], trainer) for n in names if n in ef},
    }


def save_sharded(folder: str | Path, trainer: ShardedTrainer, position: dict) -> Path:
    """Collective: write the trainer's state; returns the manifest path."""
    folder = Path(folder)
    old = read_manifest(folder)
    n = (old["serial"] + 1) if old else 0
    target = folder / f"sharded.{n}"
    if trainer.ctx.is_main:
        shutil.rmtree(target, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    dcp.save(_state(trainer), checkpoint_id=str(target))
    dist.barrier()
    manifest = folder / MANIFEST
    if trainer.ctx.is_main:
        doc = {
            "format": FORMAT,
            "serial": n,
            "dir": target.name,
            "world": trainer.ctx.world,
            "ef_names": sorted(trainer.compressor.error),
            "position": position,
        }
        tmp = folder / (MANIFEST + ".tmp")
        fsync_write(tmp, json.dumps(doc, sort_keys=True).encode())
        os.replace(tmp, manifest)
        for stale in folder.glob("sharded.*"):
            if stale.is_dir() and stale.name != target.name:
                shutil.rmtree(stale, ignore_errors=True)
    dist.barrier()
    return manifest


def read_manifest(folder: Path) -> dict | None:
    try:
        doc = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    return doc


PARTS = ("model", "optim", "global", "ef")


def load_sharded(folder: str | Path, trainer: ShardedTrainer, parts=PARTS) -> dict:
    """Collective: restore ``parts`` of the trainer's state in place (all of it, or e.g. only
    the AdamW moments and error feedback); returns the saved position."""
    folder = Path(folder)
    doc = read_manifest(folder)
    if doc is None or not (folder / str(doc.get("dir", ""))).is_dir():
        raise ShardedStateError(f"no sharded state under {folder}")
    for name in doc["ef_names"]:
        trainer.compressor.error.setdefault(
            name, torch.zeros_like(trainer.global_shards[name]).reshape(-1)
        )
    state = {k: v for k, v in _state(trainer).items() if k in parts}
    dcp.load(state, checkpoint_id=str(folder / doc["dir"]))
    if "model" in state:
        set_model_state_dict(trainer.model, state["model"])
    if "optim" in state:
        set_optimizer_state_dict(trainer.model, trainer.optimizer, state["optim"])
    with torch.no_grad():
        for n, t in state.get("global", {}).items():
            trainer.global_shards[n].copy_(t.to_local().reshape(trainer.global_shards[n].shape))
        for n, t in state.get("ef", {}).items():
            trainer.compressor.error[n] = t.to_local().reshape(-1).clone().float()
    return doc["position"]
