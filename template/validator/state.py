"""The validator's persistent state: scores, windows, model position and weights.

Two files in the state dir, each written to a temporary name and renamed (atomic):
``model.safetensors`` (the global model's parameters) and ``validator_state.json``
(everything else plus the model file's sha256). A torn, mismatched or non-finite state is
refused on load (logged) and the validator starts fresh rather than trust it; a sound state
beside an unusable model file keeps everything but the model position (``load_state``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from template.fileio import file_sha256

logger = logging.getLogger(__name__)

STATE_FILE = "validator_state.json"
MODEL_FILE = "model.safetensors"
VERSION = 1


@dataclass
class ValidatorState:
    window: int = -1  # last completed window
    applied_through: int | None = None  # last window whose aggregate is in the model
    scores: dict[int, float] = field(default_factory=dict)
    hotkeys: dict[int, str] = field(default_factory=dict)
    last_evaluated: dict[int, int] = field(default_factory=dict)
    weights: dict[int, float] = field(default_factory=dict)
    weights_set: int = 0
    last_weights_block: int | None = None
    digests: dict[str, tuple[int, int]] = field(default_factory=dict)  # replay memory
    evidence_s: dict[int, float] = field(default_factory=dict)  # judge.Evidence sums
    evidence_v: dict[int, float] = field(default_factory=dict)
    eval_seconds: float | None = None  # moving average of seconds per evaluated upload
    peers: dict[int, list[int]] = field(default_factory=dict)  # last window -> its peer uids
    full_work: tuple[int, float] | None = None  # score.FullWorkMemory: (window, rate)
    hparams_hash: str = ""


def save_state(state_dir: Path, state: ValidatorState, model: torch.nn.Module) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp_model = state_dir / f".{MODEL_FILE}.tmp"
    save_file(
        {n: p.detach().float().cpu().contiguous() for n, p in model.named_parameters()},
        str(tmp_model),
    )
    digest = file_sha256(tmp_model)
    os.replace(tmp_model, state_dir / MODEL_FILE)
    data = asdict(state)
    data["digests"] = {d: list(wu) for d, wu in state.digests.items()}
    doc = {"version": VERSION, "model_sha256": digest, "state": data}
    tmp = state_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(doc, sort_keys=True))
    os.replace(tmp, state_dir / STATE_FILE)


def _finite_map(raw: dict, value_type=float) -> dict:
    out = {}
    for k, v in raw.items():
        v = value_type(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"non-finite value for {k}")
        out[int(k)] = v
    return out


def _parse_state(raw: dict, hparams_hash: str) -> ValidatorState:
    if raw["hparams_hash"] != hparams_hash:
        raise ValueError("state belongs to a run with other hyperparameters")
    eval_seconds = raw.get("eval_seconds")
    full_work = raw.get("full_work")
    if full_work is not None:
        if not isinstance(full_work, list) or len(full_work) != 2:
            raise ValueError(f"full_work must be [window, rate], got {full_work!r}")
        full_work = (int(full_work[0]), float(full_work[1]))
        if not math.isfinite(full_work[1]):
            raise ValueError("non-finite full_work rate")
    return ValidatorState(
        window=int(raw["window"]),
        applied_through=None if raw["applied_through"] is None else int(raw["applied_through"]),
        scores=_finite_map(raw["scores"]),
        hotkeys={int(k): str(v) for k, v in raw["hotkeys"].items()},
        last_evaluated=_finite_map(raw["last_evaluated"], int),
        weights=_finite_map(raw["weights"]),
        weights_set=int(raw["weights_set"]),
        last_weights_block=raw["last_weights_block"],
        digests={str(d): (int(wu[0]), int(wu[1])) for d, wu in raw["digests"].items()},
        evidence_s=_finite_map(raw.get("evidence_s", {})),
        evidence_v=_finite_map(raw.get("evidence_v", {})),
        eval_seconds=None if eval_seconds is None else float(eval_seconds),
        peers={int(w): [int(u) for u in us] for w, us in raw.get("peers", {}).items()},
        full_work=full_work,
        hparams_hash=raw["hparams_hash"],
    )


def _saved_model(model_path: Path, digest: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The saved parameters, checked against the state's digest and ``model``'s layout."""
    if file_sha256(model_path) != digest:
        raise ValueError("model file does not match the digest in the state file")
    tensors = load_file(str(model_path))
    params = dict(model.named_parameters())
    if set(tensors) != set(params):
        raise ValueError("saved model has other parameters")
    for name, t in tensors.items():
        if t.shape != params[name].shape or not bool(torch.isfinite(t).all()):
            raise ValueError(f"saved parameter {name} has a bad shape or non-finite values")
    return tensors


def load_state(state_dir: Path, model: torch.nn.Module, hparams_hash: str) -> ValidatorState | None:
    """Restore the state and the model's weights, or None (fresh start) when absent or unsound.

    A sound state beside an unusable model file (missing, torn, or the next save's model after
    a kill between the two renames) keeps the scores, evidence and replay memory; only the
    model position is dropped (``applied_through`` None: start-up catches up from the latest
    checkpoint) and ``model`` is left as it was."""
    path, model_path = state_dir / STATE_FILE, state_dir / MODEL_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != VERSION:
            raise ValueError(f"state version {doc.get('version')} != {VERSION}")
        state = _parse_state(doc["state"], hparams_hash)
        digest = str(doc["model_sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.warning("ignoring saved validator state in %s (%s); starting fresh", state_dir, e)
        return None
    try:
        tensors = _saved_model(model_path, digest, model)
    except (OSError, ValueError, SafetensorError) as e:
        logger.warning(
            "saved model in %s is unusable (%s); keeping the scores and catching the model up "
            "from the latest checkpoint",
            state_dir,
            e,
        )
        state.applied_through = None
        return state
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(tensors[name].to(p.device, p.dtype))
    return state
