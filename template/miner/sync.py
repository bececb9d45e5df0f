"""Staying on the global model: the miner's schedule around the shared window-apply path.

Which bytes change the model is decided in ``template/protocol/window_apply.py`` (the same
code the validator runs). This module only schedules it for the miner:

1. wait for ``upload_cutoff(a)`` (no peer list can exist before), then ``apply_window(a)``:
   the leader's aggregate when behind, the leader's peer list polled until ``end(a + 1)``,
   else the bootstrap rule; the outer step runs as a trainer job (global model and live
   weights, between two training steps);
2. compare the fingerprint with the leader's in the background once it is published (until
   ``end(a + 2)``); on a mismatch re-sync from the latest checkpoint plus aggregates.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable

import torch

from template.hparams import HParams
from template.protocol.directory import PeerDirectory
from template.protocol.fingerprint import model_fingerprint
from template.protocol.window_apply import (
    OuterStep,
    WindowApplier,
    check_order,
    copy_params,
)
from template.protocol.windows import WindowClock
from template.training.model import param_shapes
from template.training.offload import in_worker

from .clock import BlockClock
from .trainer import Trainer

logger = logging.getLogger(__name__)

POLL_S = 0.5  # seconds between polls for a leader document (scaled down for fast chains)


class TrainerModel:
    """The miner's ``GlobalModel``: every change is a job of the training thread."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    @property
    def applied_through(self) -> int:
        return self.trainer.applied_through

    def copy(self) -> torch.nn.Module:
        return copy.deepcopy(self.trainer.global_model).cpu()

    async def _run(self, job):
        fut = await in_worker(self.trainer.submit, job)
        return await asyncio.wrap_future(fut)

    async def apply(self, window: int, step: OuterStep) -> tuple[int, list[float]]:
        trainer = self.trainer

        def job() -> tuple[int, list[float]]:
            check_order(trainer.applied_through, window)
            n = trainer.apply_outer(step, window)  # marks the window applied once it is in
            return n, model_fingerprint(trainer.global_model)

        return await self._run(job)

    async def replace(self, window: int, source: torch.nn.Module) -> list[float]:
        trainer = self.trainer

        def job() -> list[float]:
            copy_params(source, trainer.global_model)
            trainer.reset_live()
            trainer.applied_through = window
            return model_fingerprint(trainer.global_model)

        return await self._run(job)


class Sync:
    """Runs the aggregate/fingerprint chain of windows as one background task."""

    def __init__(
        self,
        hp: HParams,
        directory: PeerDirectory,
        trainer: Trainer,
        clock: BlockClock,
        *,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.hp, self.directory, self.trainer, self.clock = hp, directory, trainer, clock
        self.windows = WindowClock(hp.window)
        self.progress = progress

        async def block() -> int:
            # the last block the chain confirmed, never the clock's estimate during an outage:
            # the bootstrap rule's deadline is the chain's, and a stalled chain (the dev chain
            # killed) has not reached it; applying it early would split from the leader
            return int(self.clock.block)

        self.applier = WindowApplier(
            hp,
            directory,
            TrainerModel(trainer),
            param_shapes(trainer.global_model),
            block=block,
            timestamp=clock.timestamp,
            poll_s=self._poll,
        )
        self.needs_resync = False
        self.last_error = ""
        self._checks: set[asyncio.Task] = set()

    @property
    def applied_through(self) -> int:
        return self.trainer.applied_through

    @property
    def own_fingerprints(self) -> dict[int, list[float]]:
        return self.applier.own_fingerprints

    def _poll(self) -> float:
        return min(POLL_S, max(0.05, self.clock.block_time / 2))

    # --- the background task -------------------------------------------------------
    async def run(self) -> None:
        """Apply windows in order forever (cancel to stop). Errors are logged, then retried."""
        while True:
            try:
                if self.trainer.global_suspect:  # an outer step failed part-way through it
                    self.trainer.global_suspect = False
                    logger.warning("sync: the global model may hold part of an outer step")
                    self.needs_resync = True
                if self.needs_resync:
                    await self.resync()
                    continue
                a = self.applied_through + 1
                await self.clock.until(self.windows.upload_cutoff(a))
                await self.apply_window(a)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - never crash the miner on a peer or outage
                msg = f"{type(e).__name__}: {e}"
                if msg != self.last_error:
                    logger.warning("sync: %s (retrying)", msg)
                self.last_error = msg
                await asyncio.sleep(max(1.0, self.clock.block_time))

    async def apply_window(self, a: int) -> None:
        await self.directory.refresh()
        done = await self.applier.apply_window(a)
        if done is not None and (done.leader is not None or done.basis == "aggregate"):
            task = asyncio.create_task(self.check_fingerprint(a, done.leader))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    # --- fingerprints and re-sync ------------------------------------------------------
    async def check_fingerprint(self, a: int, leader: str | None) -> None:
        """Compare our fingerprint of ``a`` with the leader's once published (until end(a+2))."""
        give_up = self.windows.end(a + 2)
        while True:
            try:
                ok = await self.applier.check_fingerprint(a, leader)
            except Exception as e:  # noqa: BLE001
                logger.debug("fingerprint of %d: %s", a, e)
                ok = None
            if ok is not None:
                break
            if a not in self.applier.own_fingerprints or self.clock.block_now() >= give_up:
                return
            await asyncio.sleep(self._poll())
        if ok is False:
            self.needs_resync = True

    async def resync(self) -> None:
        """Rebuild the global model from the latest checkpoint and the aggregates since."""
        target = max(-1, int(self.windows.window_of(int(self.clock.block_now()))) - 1)
        got = await self.applier.resync(target, progress=self.progress)
        self.needs_resync = False
        if got is not None:
            self.applier.fingerprint_ok = None

    async def close(self) -> None:
        for t in list(self._checks):
            t.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
