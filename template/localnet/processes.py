"""Child processes of the local subnet: one log file each, stopped cleanly, never orphaned.

Every child runs in its own session (so a terminal's Ctrl-C reaches only the orchestrator,
which then stops the children in order) and, on Linux, asks the kernel to SIGTERM it if the
orchestrator dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One running child: its name, command, log file and process."""

    name: str
    cmd: list[str]
    log_path: Path
    proc: subprocess.Popen = field(repr=False)
    killed: bool = False  # needed SIGKILL at teardown (did not stop within the timeout)
    terminated: bool = False  # SIGTERM sent (once: a second one may hit a finished handler)
    env: dict[str, str] | None = field(default=None, repr=False)  # as given to start_child
    cwd: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (the child and anything it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def terminate(self) -> None:
        """SIGTERM the child's group, once."""
        if self.running() and not self.terminated:
            self.terminated = True
            self.signal_group(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        if self.running():
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
                self.killed = True
        self.signal_group(signal.SIGKILL)  # stragglers in the group, if any
        if self.running():
            self.proc.kill()
        return self.proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_child(
    name: str,
    cmd: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start ``cmd`` with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    logger.debug("started %s (pid %d): %s", name, proc.pid, " ".join(cmd))
    return Child(name, list(cmd), log_path, proc, env=dict(env) if env else None, cwd=cwd)


class Children:
    """The run's children in start order; ``stop_all`` stops them in reverse order."""

    def __init__(self) -> None:
        self.items: list[Child] = []

    def add(self, child: Child) -> Child:
        self.items.append(child)
        return child

    def replace(self, child: Child) -> None:
        """Put a restarted child in the place of the one with its name (start order kept)."""
        for i, c in enumerate(self.items):
            if c.name == child.name:
                self.items[i] = child
                return
        self.items.append(child)

    def by_name(self, name: str) -> Child | None:
        return next((c for c in self.items if c.name == name), None)

    def exited(self) -> list[Child]:
        return [c for c in self.items if not c.running()]

    def stop_all(self, timeout: float = 15.0, first: Callable[[Child], bool] | None = None) -> None:
        """Stop the children: those matching ``first`` together (SIGTERM all, then wait), then
        the rest one by one in reverse start order (e.g. neurons before S3 before the chain)."""
        head = [c for c in self.items if first is not None and first(c)]
        for c in head:
            c.terminate()
        deadline = time.monotonic() + timeout
        for c in head:
            c.stop(max(0.1, deadline - time.monotonic()))
        for c in reversed([c for c in self.items if c not in head]):
            c.stop(timeout)


def wait_for_http(url: str, child: Child, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any HTTP status); RuntimeError if the child dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise RuntimeError(
                f"{child.name} exited with code {child.proc.returncode} during start-up; "
                f"see {child.log_path}:\n{child.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer on {url} within {timeout:.0f}s")
