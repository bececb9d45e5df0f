"""training/offload.py: model work in a worker thread, on the caller's CUDA device."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from template.training import offload

ROOT = Path(__file__).resolve().parents[2]


def test_in_worker_runs_off_the_loop_thread_and_returns_or_raises():
    loop_thread = threading.get_ident()

    def work(x: int, *, y: int) -> tuple[int, int]:
        return threading.get_ident(), x + y

    thread, value = asyncio.run(offload.in_worker(work, 2, y=3))
    assert value == 5 and thread != loop_thread

    def fails() -> None:
        raise ValueError("bad upload")

    with pytest.raises(ValueError, match="bad upload"):
        asyncio.run(offload.in_worker(fails))


def test_in_worker_sets_the_callers_cuda_device_in_the_worker(monkeypatch):
    """A worker thread starts on CUDA device 0; a rank on device 1 must compute on 1."""
    set_in: list[tuple[int, int]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(
        torch.cuda, "set_device", lambda d: set_in.append((threading.get_ident(), d))
    )

    worker = asyncio.run(offload.in_worker(threading.get_ident))
    assert set_in == [(worker, 1)]


def test_in_worker_leaves_cuda_alone_where_the_process_has_not_used_it(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    assert asyncio.run(offload.in_worker(lambda: 7)) == 7
    assert calls == []


ARENAS = """
import ctypes, sys, threading
from template.training.offload import share_main_arena
if sys.argv[1] == "share":
    share_main_arena()
def work():
    global kept
    kept = [bytearray(1 << 16) for _ in range(64)]
t = threading.Thread(target=work)
t.start()
t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's malloc arenas",
)
def test_worker_threads_allocate_from_the_main_arena_once_shared():
    """A worker thread's own arena gave CPU forward passes 15-37% more time (page faults on
    every large tensor): with ``share_main_arena`` a new thread allocates from arena 0."""

    def arenas(mode: str) -> int:
        got = subprocess.run(
            [sys.executable, "-c", ARENAS, mode],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=True,
        )
        return sum(line.startswith("Arena ") for line in got.stderr.splitlines())

    assert arenas("own") == 2
    assert arenas("share") == 1
