"""Follow a running local subnet: the nodes' status files and the chain, window by window.

``Tracker.update(snapshot)`` folds one poll into per-window records and returns what changed
(new windows, epochs, first weights) so the view can print it; ``summary.py`` reads the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from template.node.status import read_status


@dataclass
class Snapshot:
    """One poll: every node's status (None if not written yet) and the chain's view."""

    statuses: dict[str, dict[str, Any] | None]
    block: int
    incentive: dict[int, float]  # by uid
    weights_rows: int  # validators with a weights row on chain
    last_epoch: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class WindowRecord:
    """What the leading validator reported for one window, plus the chain at that moment."""

    window: int
    block: int
    heldout_loss: float | None
    uploads_seen: int | None
    uploads_valid: int | None
    scores: dict[int, float]
    weights: dict[int, float]
    weights_set: int
    incentive: dict[int, float]
    miner_loss: dict[int, float | None]
    miner_upload_bytes: dict[int, float | None]
    miner_upload_seconds: dict[int, float | None]
    eval_seconds_per_upload: float | None
    rejected: dict[str, str]  # uid -> why the leader rejected that upload
    decisions: dict[str, str]  # uid -> the leader's verdict on that upload, with its evidence
    outer_step: dict[str, Any] | None  # the leader's check of its list's step (step_check.py)
    in_sync: dict[str, bool | None]
    seconds: float  # since the run started


@dataclass
class EpochRecord:
    block: int
    incentive: dict[int, float]
    seconds: float


def read_statuses(state_dirs: dict[str, str]) -> dict[str, dict[str, Any] | None]:
    return {name: read_status(Path(d)) for name, d in state_dirs.items()}


def _uid_map(d: Any) -> dict[int, float]:
    """{uid: value} from a status field whose keys may be strings (JSON) or ints."""
    out: dict[int, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            try:
                out[int(k)] = float(v)
            except (TypeError, ValueError):
                continue
    return out


def _str_map(d: Any) -> dict[str, str]:
    """{uid: text} from a status field (empty when absent or not a mapping)."""
    return {str(k): str(v) for k, v in d.items()} if isinstance(d, dict) else {}


class Tracker:
    """Per-window and per-epoch history of one run, built from successive snapshots."""

    def __init__(self, leader: str, miners: dict[str, int], validators: list[str], t0: float):
        self.leader = leader  # the validator whose windows define the run's windows
        self.miners = miners  # name -> uid
        self.validators = validators
        self.t0 = t0
        self.windows: dict[int, WindowRecord] = {}
        self.epochs: list[EpochRecord] = []
        self.first_weights_s: float | None = None
        self.first_status_window: dict[str, int] = {}
        self.history: dict[str, dict[int, dict[str, Any]]] = {}  # node -> window -> status
        # node -> (block, in_sync) of every status written (a restarted miner writes one at
        # start-up, about the window it last finished): what recovery is measured on
        self.sync_log: dict[str, list[tuple[int, bool]]] = {}
        self.last: Snapshot | None = None
        self._last_epoch_seen: int | None = None

    @property
    def windows_completed(self) -> int:
        return len(self.windows)

    def update(self, snap: Snapshot) -> list[tuple[str, Any]]:
        """Fold in one poll; returns events: ("window", WindowRecord), ("epoch", EpochRecord),
        ("first_weights", seconds)."""
        events: list[tuple[str, Any]] = []
        self.last = snap
        now = snap.at - self.t0
        for name, st in snap.statuses.items():
            if st and isinstance(st.get("window"), int):
                if st["window"] >= 0:  # a fresh miner's start-up status is about window -1
                    self.first_status_window.setdefault(name, st["window"])
                by_window = self.history.setdefault(name, {})
                prev = by_window.get(st["window"]) or {}  # a later write never erases a figure
                by_window[st["window"]] = prev | {k: v for k, v in st.items() if v is not None}
                self._log_sync(name, st)
        if self.first_weights_s is None and snap.weights_rows > 0:
            self.first_weights_s = now
            events.append(("first_weights", now))
        if self._last_epoch_seen is None:
            self._last_epoch_seen = snap.last_epoch
        elif snap.last_epoch != self._last_epoch_seen:
            self._last_epoch_seen = snap.last_epoch
            rec = EpochRecord(snap.last_epoch, dict(snap.incentive), now)
            self.epochs.append(rec)
            events.append(("epoch", rec))
        lead = snap.statuses.get(self.leader) or {}
        w = lead.get("window")
        if "uploads_seen" in lead and lead["uploads_seen"] is None:  # a start-up status
            w = None
        if isinstance(w, int) and (w not in self.windows or w == max(self.windows)):
            # a new window, or a later write about the newest one (kept fresh, printed once)
            first = self.windows.get(w)
            rec = WindowRecord(
                window=w,
                block=snap.block if first is None else first.block,
                heldout_loss=_float(lead.get("heldout_loss")),
                uploads_seen=_int(lead.get("uploads_seen")),
                uploads_valid=_int(lead.get("uploads_valid")),
                scores=_uid_map(lead.get("scores")),
                weights=_uid_map(lead.get("weights")),
                weights_set=self.weights_set(snap),
                incentive=dict(snap.incentive),
                miner_loss=self._miner_field(w, "loss"),
                miner_upload_bytes=self._miner_field(w, "upload_bytes"),
                miner_upload_seconds=self._miner_field(w, "upload_seconds"),
                eval_seconds_per_upload=_float(lead.get("eval_seconds_per_upload")),
                rejected=_str_map(lead.get("rejected")),
                decisions=_str_map(lead.get("decisions")),
                outer_step=step if isinstance(step := lead.get("outer_step"), dict) else None,
                in_sync={name: (st or {}).get("in_sync") for name, st in snap.statuses.items()},
                seconds=now if first is None else first.seconds,
            )
            self.windows[w] = rec
            if first is None:
                events.append(("window", rec))
        return events

    def _log_sync(self, name: str, st: dict[str, Any]) -> None:
        block = st.get("block")
        log = self.sync_log.setdefault(name, [])
        if isinstance(block, int) and (not log or log[-1][0] != block):
            log.append((block, bool(st.get("in_sync"))))

    def _miner_field(self, window: int, key: str) -> dict[int, float | None]:
        """Each miner's ``key`` from the status it wrote for ``window`` (None if not seen)."""
        return {
            uid: _float(self.history.get(name, {}).get(window, {}).get(key))
            for name, uid in self.miners.items()
        }

    def weights_set(self, snap: Snapshot | None = None) -> int:
        """Successful set_weights over all validators (their status counters)."""
        snap = snap or self.last
        if snap is None:
            return 0
        total = 0
        for name in self.validators:
            total += _int((snap.statuses.get(name) or {}).get("weights_set")) or 0
        return total

    def _expected(self, window: int) -> int:
        """Miners that had completed a window by ``window`` (a miner starting mid-run is not
        expected to upload for windows before its first)."""
        return sum(
            1 for name in self.miners if self.first_status_window.get(name, 1 << 62) <= window
        )

    def uploads_missing(self) -> int:
        """Uploads that should have landed but did not, as the leader saw them (per window:
        expected miners minus uploads seen); at least the misses the miners report."""
        by_leader = sum(
            max(0, self._expected(w) - rec.uploads_seen)
            for w, rec in self.windows.items()
            if rec.uploads_seen is not None
        )
        by_miners = 0
        if self.last is not None:
            for name in self.miners:
                by_miners += _int((self.last.statuses.get(name) or {}).get("uploads_missed")) or 0
        return max(by_leader, by_miners)

    def uploads_rejected(self) -> int:
        """Uploads the leader saw but did not accept (seen minus valid, over all windows)."""
        return sum(
            max(0, rec.uploads_seen - rec.uploads_valid)
            for rec in self.windows.values()
            if rec.uploads_seen is not None and rec.uploads_valid is not None
        )

    def in_sync(self) -> bool:
        """Every node's last status says in_sync."""
        if self.last is None:
            return False
        return all(bool((st or {}).get("in_sync")) for st in self.last.statuses.values())


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v
