"""A node's status: one dataclass per role over one shared core, and the file that holds it.

``MinerStatus`` and ``ValidatorStatus`` are the only definition of the status keys: the
status file (rewritten atomically after every window), the local subnet's summary and the
metrics endpoint (``node/metrics.py``: ``Metrics.set_status`` takes these dataclasses) all
read them. Operators can ``cat`` the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
IDENTITY_KEYS = ("role", "hotkey", "uid")  # who wrote the status (the summary knows them)


@dataclass
class NodeStatus:
    """What every node reports after a window."""

    role: str
    hotkey: str
    uid: int | None
    window: int
    block: int
    in_sync: bool
    fingerprint_ok: bool | None  # last comparison with the leader's fingerprint
    applied_through: int | None  # last window whose aggregate is in the model
    peers_applied: int
    heldout_loss: float | None = None
    train_seconds_total: float = 0.0
    wall_seconds_total: float = 0.0
    utilization: float = 0.0  # training time over wall time


@dataclass
class MinerStatus(NodeStatus):
    """A miner's status: its last window's training and upload."""

    loss: float | None = None
    tokens_per_s: float = 0.0
    upload_bytes: int = 0
    upload_seconds: float = 0.0
    uploads_done: int = 0
    uploads_missed: int = 0
    windows_behind: int = 0  # windows trained without the previous window's aggregate
    steps: int = 0
    pages: int = 0
    verdicts_window: int | None = None  # the window of ``verdicts``
    verdicts: dict[str, str] = field(default_factory=dict)  # validator hotkey -> its verdict


@dataclass
class ValidatorStatus(NodeStatus):
    """A validator's status: its last window's uploads, scores and weights."""

    is_leader: bool = False
    leader: str | None = None
    uploads_seen: int = 0
    uploads_valid: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # by uid (as a string)
    weights: dict[str, float] = field(default_factory=dict)
    weights_set: int = 0
    last_weights_block: int | None = None
    weights_landed: bool | None = None
    weights_check: str | None = None
    eval_seconds_per_upload: float | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # uid -> "code: detail"
    decisions: dict[str, str] = field(default_factory=dict)  # uid -> the judge's decision
    outer_step: dict | None = None  # the leader's check of its list's step (step_check.py)


def status_keys(*kinds: type[NodeStatus]) -> tuple[str, ...]:
    """The keys of these status kinds (default: both roles), shared keys first, in order."""
    out: list[str] = []
    for kind in kinds or (MinerStatus, ValidatorStatus):
        out += [f.name for f in dataclasses.fields(kind) if f.name not in out]
    return tuple(out)


def write_status(state_dir: Path, status: NodeStatus | dict[str, Any]) -> None:
    """Atomically replace ``state_dir/status.json`` with ``status`` (+ a timestamp)."""
    if dataclasses.is_dataclass(status) and not isinstance(status, type):
        status = dataclasses.asdict(status)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATUS_FILE}.tmp"
    tmp.write_text(json.dumps({**status, "updated_at": time.time()}, sort_keys=True))
    os.replace(tmp, state_dir / STATUS_FILE)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last status written, or None (missing or half-written files are not an error)."""
    try:
        return json.loads((Path(state_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
