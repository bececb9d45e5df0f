"""The process group of a node: rank facts and broadcasts from rank 0.

Launched by ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the environment);
without those variables the node is a single process and nothing here is used.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from .launch import free_port  # re-exported: one definition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the node."""

    rank: int
    world: int
    local_rank: int
    backend: str  # "nccl" on CUDA, "gloo" on CPU
    device: torch.device
    mesh: DeviceMesh

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the process group torchrun set up; CUDA ranks take GPU ``LOCAL_RANK``."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if torch.device(device).type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    mesh = init_device_mesh(dev.type, (world,))
    logger.info("rank %d of %d (%s on %s)", rank, world, backend, dev)
    return DistContext(rank, world, local, backend, dev, mesh)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (pickled over the process group: only ever objects this
    node's own rank 0 built, never peer data)."""
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_tensor(t: torch.Tensor | None, ctx: DistContext) -> torch.Tensor:
    """Rank 0's tensor on every rank (shape and dtype sent first), on ``ctx.device``."""
    spec = broadcast_object((tuple(t.shape), t.dtype) if ctx.is_main else None, ctx)
    if ctx.is_main:
        buf = t.to(ctx.device).contiguous()
    else:
        buf = torch.empty(spec[0], dtype=spec[1], device=ctx.device)
    dist.broadcast(buf, src=0)
    return buf


async def run_ranks(
    device: str,
    lead: Callable[[DistContext], Awaitable[None]],
    follow: Callable[[DistContext], Any],
) -> None:
    """A node under torchrun: join the process group; rank 0 runs ``lead``, the others
    ``follow``; leave the group however it ends."""
    ctx = init_distributed(device)
    try:
        if ctx.is_main:
            await lead(ctx)
        else:
            follow(ctx)
    finally:
        close_distributed()


class RankCommandsStopped(RuntimeError):
    """Rank 0 asked for a collective after it released the other ranks (``shutdown``)."""


class RankCommands:
    """Rank 0 drives, the other ranks follow: every collective rank 0 starts is announced
    first with a small command broadcast, ``(op, args)``, and each rank runs ``_do_<op>``.

    On rank 0 a command (its broadcast and its collectives) runs whole under a lock, so
    commands from different threads (the training thread, a job run inline by a worker
    thread, the shutdown on the event loop's thread) never interleave: an interleaved
    ``stop`` can let a follower leave while rank 0 is still inside a collective (the likely
    cause of a 2-rank miner ending with "terminate called without an active exception").
    After ``shutdown`` rank 0 refuses commands (``RankCommandsStopped``) instead of waiting
    for ranks that are gone."""

    ctx: DistContext

    def _command_lock(self) -> threading.RLock:
        return self.__dict__.setdefault("_rank_command_lock", threading.RLock())

    def _cmd(self, op: str, *args):
        if not self.ctx.is_main:
            return getattr(self, f"_do_{op}")(*args)
        with self._command_lock():
            if self.__dict__.get("_ranks_released"):
                raise RankCommandsStopped(f"{op!r} after the other ranks were released")
            broadcast_object((op, args), self.ctx)
            return getattr(self, f"_do_{op}")(*args)

    def follow(self) -> None:
        """Ranks > 0: execute rank 0's commands until ``stop``. If rank 0 goes away between
        commands (it crashed, or closed the group before this rank read its ``stop``), this
        rank leaves too, with one error line: rank 0's own log holds the cause."""
        while True:
            try:
                op, args = broadcast_object(None, self.ctx)
            except RuntimeError as e:  # gloo/NCCL errors (DistBackendError is one)
                logger.error(
                    "rank %d: rank 0 left without releasing this rank (%s); stopping",
                    self.ctx.rank,
                    str(e).splitlines()[0][:300] if str(e) else type(e).__name__,
                )
                return
            if op == "stop":
                return
            getattr(self, f"_do_{op}")(*args)

    def shutdown(self) -> None:
        """Rank 0: release the followers, once, after the command in flight (if any)."""
        if not self.ctx.is_main:
            return
        with self._command_lock():
            if self.__dict__.get("_ranks_released"):
                return
            self._ranks_released = True
            broadcast_object(("stop", ()), self.ctx)


__all__ = [
    "DistContext",
    "RankCommands",
    "RankCommandsStopped",
    "broadcast_object",
    "broadcast_tensor",
    "close_distributed",
    "free_port",
    "init_distributed",
    "leave_spawned_rank",
    "run_ranks",
]


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave_spawned_rank() -> NoReturn:
    """End a spawned rank that finished its work and closed its group, skipping interpreter
    teardown (exit status 0).

    DTensor's sharding caches keep the device mesh, and so the gloo process group and its
    worker threads, alive after ``destroy_process_group``; they are torn down while the
    interpreter finalizes, which now and then aborts a rank whose results are already written
    ("terminate called without an active exception", SIGABRT). Call it only on success: a
    failing rank raises, and ``torch.multiprocessing`` reports its traceback."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
