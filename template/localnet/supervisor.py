"""Supervision of the local subnet's processes, as pm2 or systemd would give an operator.

A child that exits on its own is restarted after a back-off that doubles with each crash in a
row (1, 2, 4 ... up to 30 s) and resets once the child has stayed up for ``healthy_after_s``.
More than ``max_restarts`` crashes within ``window_s`` and the node is marked ``failed`` and
left down. An operator may stop, start or restart one node (``control.py``); a node stopped by
the operator stays down until started again.

Node states: ``up`` (running), ``backoff`` (crashed, restart pending), ``stopped`` (by the
operator), ``failed`` (crashed too often; given up).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .processes import Child, Children, start_child

logger = logging.getLogger(__name__)

UP, BACKOFF, STOPPED, FAILED = "up", "backoff", "stopped", "failed"


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed child is started again."""

    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0  # up this long: the next crash starts the back-off afresh
    max_restarts: int = 10  # crashes within window_s before the node is given up
    window_s: float = 600.0

    def delay(self, crashes_in_a_row: int) -> float:
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, crashes_in_a_row - 1))


@dataclass
class Crash:
    at: float  # seconds since the supervisor started
    exit_code: int | None


@dataclass
class NodeHealth:
    """What the supervisor knows about one child."""

    name: str
    state: str = UP
    pid: int = 0
    starts: int = 1
    restarts: int = 0  # automatic restarts after a crash
    crashes: list[Crash] = field(default_factory=list)
    in_a_row: int = 0
    up_since: float = 0.0
    next_start: float | None = None
    operator_actions: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        """Crashed at least once and is up again."""
        return bool(self.crashes) and self.state == UP


Event = Callable[[str, str], None]  # (node name, what happened)


class Supervisor:
    """Watches ``children``; ``tick()`` restarts crashed ones per ``policy``."""

    def __init__(
        self,
        children: Children,
        policy: RestartPolicy | None = None,
        on_event: Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.children = children
        self.policy = policy or RestartPolicy()
        self.on_event = on_event or (lambda name, what: None)
        self.clock = clock
        self.t0 = clock()
        self.health: dict[str, NodeHealth] = {}
        for c in children.items:
            self.watch(c)

    def watch(self, child: Child) -> None:
        self.health[child.name] = NodeHealth(child.name, pid=child.pid, up_since=self.clock())

    def _now(self) -> float:
        return self.clock() - self.t0

    def tick(self) -> list[str]:
        """Notice exits, start children whose back-off ended; returns the names restarted."""
        now = self.clock()
        restarted = []
        for child in list(self.children.items):
            h = self.health.setdefault(child.name, NodeHealth(child.name, pid=child.pid))
            if h.state == UP and not child.running():
                self._crashed(child, h, now)
            if h.state == BACKOFF and h.next_start is not None and now >= h.next_start:
                self._start(child.name, "restarted after a crash")
                h.restarts += 1
                restarted.append(child.name)
        return restarted

    def _crashed(self, child: Child, h: NodeHealth, now: float) -> None:
        code = child.proc.returncode
        if now - h.up_since >= self.policy.healthy_after_s:
            h.in_a_row = 0
        h.in_a_row += 1
        h.crashes.append(Crash(round(self._now(), 2), code))
        recent = [c for c in h.crashes if c.at >= self._now() - self.policy.window_s]
        if len(recent) > self.policy.max_restarts:
            h.state, h.next_start = FAILED, None
            self.on_event(
                child.name, f"exited with code {code}; gave up after {len(recent)} crashes"
            )
            return
        delay = self.policy.delay(h.in_a_row)
        h.state, h.next_start = BACKOFF, now + delay
        self.on_event(child.name, f"exited with code {code}; restarting in {delay:.0f}s")

    def _start(self, name: str, why: str) -> Child:
        old = self.children.by_name(name)
        if old is None:
            raise KeyError(name)
        new = start_child(name, old.cmd, old.log_path, env=old.env, cwd=old.cwd)
        self.children.replace(new)
        h = self.health[name]
        h.state, h.pid, h.next_start, h.up_since = UP, new.pid, None, self.clock()
        h.starts += 1
        self.on_event(name, f"{why} (pid {new.pid})")
        return new

    # --- operator commands --------------------------------------------------------------------
    def stop_node(self, name: str, timeout: float = 40.0) -> str:
        child, h = self._get(name)
        h.state, h.next_start = STOPPED, None
        h.operator_actions.append(f"{self._now():.1f}s stop")
        code = child.stop(timeout) if child.running() else child.proc.returncode
        self.on_event(name, f"stopped by the operator (exit code {code})")
        return f"{name} stopped (exit code {code})"

    def start_node(self, name: str) -> str:
        child, h = self._get(name)
        if child.running():
            return f"{name} is already running (pid {child.pid})"
        h.operator_actions.append(f"{self._now():.1f}s start")
        h.in_a_row = 0
        new = self._start(name, "started by the operator")
        return f"{name} started (pid {new.pid})"

    def restart_node(self, name: str, timeout: float = 40.0) -> str:
        self.stop_node(name, timeout)
        return self.start_node(name).replace("started", "restarted")

    def _get(self, name: str) -> tuple[Child, NodeHealth]:
        child = self.children.by_name(name)
        if child is None or name not in self.health:
            known = ", ".join(c.name for c in self.children.items)
            raise KeyError(f"no node {name!r} (nodes: {known})")
        return child, self.health[name]

    # --- reporting ----------------------------------------------------------------------------
    def report(self) -> dict[str, dict]:
        """Per node: state, pid, starts, restarts, crashes (time, exit code), recovered."""
        out = {}
        for name, h in self.health.items():
            d = asdict(h)
            d.pop("next_start")
            d.pop("in_a_row")
            d.pop("up_since")
            d["recovered"] = h.recovered
            out[name] = d
        return out

    def write(self, path: Path) -> None:
        """The report as JSON (atomically), for ``localnet.py node status`` and the chaos run."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.report(), indent=1))
        tmp.replace(path)

    def down(self) -> list[str]:
        """Nodes not running now (stopped, failed, or waiting to restart)."""
        return sorted(n for n, h in self.health.items() if h.state != UP)
