"""Faults injected into a running local subnet, and what they did (scripts/chaos_localnet.py).

A fault is ``kind:node`` with kind ``kill`` (SIGKILL; the supervisor restarts the node after its
back-off) or ``pause`` (SIGSTOP for ``pause_s`` seconds, then SIGCONT). Faults land in the
middle of a window (half its blocks in), spaced evenly over the run.

The verdict (``judge``) follows the nodes' status files and the leading validator's window
records: every node back in sync within ``sync_windows`` windows of each fault, no crash the
chaos did not cause, no saved state refused after a restart, and ``honest_penalised`` 0
(penalties.py: no honest upload rejected, none missing or late outside the windows a fault
touched or while its own miner was down).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .penalties import Penalties, count_penalties
from .run import Run

logger = logging.getLogger(__name__)

KINDS = ("kill", "pause")
FULL_PLAN = (
    "kill:miner-1",
    "pause:s3",
    "kill:validator-0",
    "pause:chain",
    "kill:chain",
    "kill:s3",
    "kill:miner-0",
)
# A restarted node that had to throw its saved state away says so in its log.
STATE_LOST_MARKS = (
    "ignoring saved validator state",
    "local state unusable",
    "state unusable",
    "starting them fresh",
)


@dataclass
class Fault:
    kind: str
    node: str
    window: int = -1  # the chain's window when it was injected
    block: int = -1
    at_s: float = 0.0  # seconds since the run started
    pid: int = 0
    log_offset: int = 0  # where the node's log stood (for state-loss lines after it)
    done: str = ""

    @classmethod
    def parse(cls, text: str) -> Fault:
        kind, _, node = text.partition(":")
        if kind not in KINDS or not node:
            raise ValueError(f"fault {text!r}: expected kill:<node> or pause:<node>")
        return cls(kind, node)


@dataclass
class ChaosConfig:
    plan: list[Fault]
    first_window: int = 2  # leader windows completed before the first fault
    spacing: int = 3  # chain windows between faults
    pause_s: float = 8.0
    sync_windows: int = 2
    blocks_per_window: int = 20
    faults_done: list[Fault] = field(default_factory=list)


def _block(run: Run) -> int | None:
    tr = run.tracker
    return tr.last.block if tr is not None and tr.last is not None else None


async def _wait(cond, poll: float = 0.2) -> None:
    while not cond():
        await asyncio.sleep(poll)


async def inject(run: Run, cfg: ChaosConfig) -> None:
    """Inject ``cfg.plan`` into ``run`` (call as a task beside ``run.main()``)."""
    await _wait(
        lambda: run.tracker is not None and run.tracker.windows_completed >= cfg.first_window
    )
    bpw = cfg.blocks_per_window
    start = (_block(run) or 0) // bpw + 1
    for i, fault in enumerate(cfg.plan):
        target = (start + i * cfg.spacing) * bpw + bpw // 2
        await _wait(lambda t=target: (_block(run) or 0) >= t or run.stop.is_set())
        if run.stop.is_set():
            return
        child = run.children.by_name(fault.node)
        if child is None:
            raise ValueError(f"no node {fault.node!r} to inject {fault.kind} into")
        block = _block(run) or 0
        fault.window, fault.block, fault.pid = block // bpw, block, child.pid
        fault.at_s = round(time.monotonic() - run.t0, 1)
        fault.log_offset = _size(child.log_path)
        if fault.kind == "kill":
            os.kill(child.pid, signal.SIGKILL)
            fault.done = "SIGKILL; the supervisor restarts it"
        else:
            os.kill(child.pid, signal.SIGSTOP)
            await asyncio.sleep(cfg.pause_s)
            os.kill(child.pid, signal.SIGCONT)
            fault.done = f"SIGSTOP for {cfg.pause_s:g}s, then SIGCONT"
        run.say(f"[chaos] {fault.kind} {fault.node} at block {block} (window {fault.window})")
        cfg.faults_done.append(fault)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _restart_block(run: Run, fault: Fault) -> int:
    """The chain block at which the supervisor started the killed node again."""
    later = [b for b in run.start_blocks.get(fault.node, []) if b >= fault.block]
    return later[0] if later else fault.block


def _first_status(run: Run, name: str, since: int, in_sync: bool) -> int | None:
    """Block of ``name``'s first status written after block ``since`` (in sync, when asked)."""
    log = run.tracker.sync_log.get(name, []) if run.tracker is not None else []
    return next((b for b, ok in log if b > since and (ok or not in_sync)), None)


def _recovery(run: Run, fault: Fault, bpw: int) -> dict[str, int | None]:
    """Per node: windows from its restart (the killed node: the supervisor's start, so its
    start-up counts) or from the fault (every other node) to its first in-sync status."""
    out: dict[str, int | None] = {}
    for name in run.tracker.sync_log if run.tracker is not None else ():
        killed = name == fault.node and fault.kind == "kill"
        since = _restart_block(run, fault) if killed else fault.block
        first = _first_status(run, name, since, in_sync=True)
        out[name] = None if first is None else first // bpw - since // bpw
    return out


def _startup(run: Run, faults: list[Fault], bpw: int) -> dict[str, int | None]:
    """Per killed neuron: windows from its restart to its first status of any kind (how much
    of the recovery is the process starting: imports, checks, catch-up)."""
    out: dict[str, int | None] = {}
    for f in faults:
        if f.kind == "kill" and run.tracker is not None and f.node in run.tracker.sync_log:
            since = _restart_block(run, f)
            first = _first_status(run, f.node, since, in_sync=False)
            out[f"{f.node}@{f.window}"] = None if first is None else first // bpw - since // bpw
    return out


def _state_lost(run: Run, faults: list[Fault]) -> list[str]:
    lost = []
    for f in faults:
        child = run.children.by_name(f.node)
        if f.kind != "kill" or child is None or f.node in ("chain", "s3"):
            continue
        try:
            with open(child.log_path, "rb") as fh:
                fh.seek(f.log_offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            continue
        lost += [f"{f.node}: {m}" for m in STATE_LOST_MARKS if m in text]
    return sorted(set(lost))


def _down(run: Run, faults: list[Fault], bpw: int) -> dict[str, list[tuple[int, int]]]:
    """Per killed node: (window killed, window of its first status after the restart)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for f in faults:
        if f.kind == "kill":
            back = _first_status(run, f.node, _restart_block(run, f), in_sync=False)
            end = back // bpw if back is not None else 1 << 62
            out.setdefault(f.node, []).append((f.window, end))
    return out


def judge(run: Run, summary: dict[str, Any], cfg: ChaosConfig) -> dict[str, Any]:
    """The chaos run's JSON verdict."""
    faults, bpw = cfg.faults_done, cfg.blocks_per_window
    tr = run.tracker
    pen = Penalties()
    if tr is not None:
        pen = count_penalties(tr, [f.window for f in faults], _down(run, faults, bpw))
    recovery = {f"{f.kind}:{f.node}@{f.window}": _recovery(run, f, bpw) for f in faults}
    slow = {
        k: {n: lag for n, lag in lags.items() if lag is None or lag > cfg.sync_windows}
        for k, lags in recovery.items()
    }
    slow = {k: v for k, v in slow.items() if v}
    sup = summary.get("supervision", {})
    crashed = sorted(  # exits the chaos did not cause (its kills exit with -SIGKILL)
        f"{name} exit {c['exit_code']} at {c['at']}s"
        for name, h in sup.items()
        for c in h["crashes"]
        if c["exit_code"] != -signal.SIGKILL
    )
    state_lost = _state_lost(run, faults)
    penalised = len(pen.penalised)
    chain_windows = sorted(tr.windows) if tr is not None and tr.windows else []
    ok = (
        summary.get("stop_reason") == "windows"
        and len(faults) == len(cfg.plan)
        and not crashed
        and not slow
        and not state_lost
        and penalised == 0
        and bool(summary.get("in_sync"))
        and not summary.get("down")
    )
    return {
        "ok": ok,
        "windows": (chain_windows[-1] - chain_windows[0] + 1) if chain_windows else 0,
        "windows_validated": len(chain_windows),
        "faults": {"count": len(faults), "list": [_fault_row(f) for f in faults]},
        "in_sync": bool(summary.get("in_sync")),
        "recovery_windows": recovery,
        "startup_windows": _startup(run, faults, bpw),
        "slow_to_recover": slow,
        "crashed": crashed,
        "state_lost": state_lost,
        "honest_penalised": penalised,
        "rejected": pen.rejected,
        "missing_outside_faults": pen.missing,
        "excused": pen.excused,
        "missing_during_faults": sum(1 for e in pen.excused if e["why"] == "missing"),
        "recovered": summary.get("recovered"),
        "down": summary.get("down"),
        "stop_reason": summary.get("stop_reason"),
        "loss_start": summary.get("loss_start"),
        "loss_end": summary.get("loss_end"),
        "wall_seconds": summary.get("wall_seconds"),
        "run_dir": summary.get("run_dir"),
    }


def _fault_row(f: Fault) -> dict[str, Any]:
    row = asdict(f)
    row.pop("log_offset")
    return row
