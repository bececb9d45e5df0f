"""Model work off the event loop: a worker thread that computes on the caller's CUDA device.

A node's event loop also runs its background tasks (the validator's upload watcher polls every
miner's bucket while the next window's uploads are due). Work that holds the loop for seconds,
a measurement, a screen of many uploads, an outer step, a state save, starves them. So such
work runs in a worker thread (``asyncio.to_thread``) while the loop waits for it.

On Linux with glibc a new thread allocates from a malloc arena of its own, and CPU forward
passes in a worker thread took 22% and 29% longer than on the main thread (median of 40 pairs,
two runs, 2026-12-06: docs/benchmarks.md, "The validator's event loop during a window"; the
likely cause, not verified: such an arena hands freed blocks back to the system, so the next
tensor pays page faults again). ``share_main_arena`` makes every thread allocate from the main
arena, where they ran as fast.
Nodes call it at start (``node.entry``), and ``in_worker`` before its first worker exists.

CUDA's current device is per thread: a new thread starts on device 0, whatever the caller set
(``torch.cuda.set_device``, as each rank of a multi-GPU node does). ``in_worker`` sets the
caller's device in the worker first, so tensors made there without an explicit index, and the
collectives of a sharded model, go where they would have gone on the caller's thread. Grad
mode and autocast are per thread as well: the code run here sets its own (``torch.no_grad``,
``training.model.autocast``).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")
logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)


@functools.cache
def share_main_arena() -> bool:
    """glibc: every thread created from now on allocates from the main arena (``mallopt
    M_ARENA_MAX 1``, as the environment variable MALLOC_ARENA_MAX=1 would); False where this
    is not Linux with glibc, or glibc refused. Once per process."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError) as e:  # musl and others: no mallopt, nothing to do
        logger.debug("mallopt unavailable: %s", e)
        return False


def caller_device() -> int | None:
    """The calling thread's CUDA device index, or None where this process has not used CUDA
    (nothing to carry, and CUDA is not initialised for it)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.current_device()


def on_device(device: int | None, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` made to set CUDA device ``device`` (None: none) in the thread that calls it."""

    @functools.wraps(fn)
    def run(*args, **kwargs) -> T:
        if device is not None:
            torch.cuda.set_device(device)
        return fn(*args, **kwargs)

    return run


async def in_worker(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread on the caller's CUDA device; the event loop
    runs its other tasks meanwhile. The caller must not touch what ``fn`` changes until it
    returns (the worker is not cancelled with the awaiting task: it runs to its end)."""
    share_main_arena()
    return await asyncio.to_thread(on_device(caller_device(), fn), *args, **kwargs)
