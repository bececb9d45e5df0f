"""The validator's measurements on a sharded model: rank 0 measures, every rank computes.

``ShardedMeasurer`` is ``validator.measure.Measurer`` (same samples, same statistics) whose two
model operations run on an FSDP2 model across the ranks:

- ``losses``: per-sequence losses, the sequences split over the ranks (each rank runs the same
  number of forward passes, as FSDP's all-gathers require), gathered back in order;
- ``applied``: θ[idx] -= s · v on each rank's own slice of every touched parameter, the exact
  values written back on exit (nested, as the leave-one-out reference needs).

Rank 0 runs the validator and calls the measurer; the other ranks run ``follow()`` and execute
the same commands (``dist.RankCommands``). Sequences and deltas travel as tensor broadcasts.

Where rank 0 keeps the validator's full model elsewhere (``source``: on the CPU, where the
window-apply path, fingerprints and state files use it), every change of it (``forget``) makes
the next ``losses`` or ``applied`` copy it into the shards first, one tensor at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from template.training.outer import SparseDelta
from template.training.pages import PageDataset
from template.validator.measure import Measurer, sequence_losses

from .compress import all_gather_varlen
from .dist import DistContext, RankCommands, broadcast_object, broadcast_tensor
from .shard import flat_range, load_full_into_shards, local, reshard_all


@torch.no_grad()
def sharded_sequence_losses(
    model: torch.nn.Module, seqs: torch.Tensor, ctx: DistContext, *, batch_size: int = 64
) -> torch.Tensor:
    """``sequence_losses`` of ``seqs`` (the same tensor on every rank), computed by all ranks;
    every rank gets all of them, in order (float64, on the CPU)."""
    mine = torch.tensor_split(seqs, ctx.world)[ctx.rank]
    per_rank = -(-seqs.shape[0] // ctx.world)
    passes = -(-per_rank // batch_size)
    out = [torch.empty(0, dtype=torch.float64)]
    for piece in torch.tensor_split(mine, passes) if passes else ():
        n = piece.shape[0]  # 0: a pass that counts for nothing keeps the collectives even
        got = sequence_losses(model, piece if n else seqs[:1], device=str(ctx.device))
        out.append(got[:n])
    return all_gather_varlen(torch.cat(out).to(ctx.device), ctx).cpu()


@contextlib.contextmanager
def delta_applied_to_shards(
    model: torch.nn.Module, delta: SparseDelta, scale: float, ctx: DistContext
) -> Iterator[None]:
    """``measure.delta_applied`` on this rank's shards (global flat indices)."""
    params = dict(model.named_parameters())
    saved = []
    reshard_all(model)  # the next forward all-gathers the edited shards
    try:
        with torch.no_grad():
            for name, (indices, values) in delta.items():
                flat = local(params[name]).view(-1)
                rng = flat_range(tuple(params[name].shape), ctx.rank, ctx.world)
                idx = indices.to(flat.device)
                keep = (idx >= rng.start) & (idx < rng.stop)
                idx = idx[keep] - rng.start
                saved.append((flat, idx, flat[idx].clone()))
                flat[idx] -= scale * values.to(flat.device, flat.dtype)[keep]
        yield
    finally:
        with torch.no_grad():
            reshard_all(model)
            for flat, idx, orig in reversed(saved):
                flat[idx] = orig


def share_sparse(delta: SparseDelta | None, ctx: DistContext) -> SparseDelta:
    """Rank 0's sparse delta on every rank: one index and one value broadcast in all."""
    names = broadcast_object(
        [(n, int(i.numel())) for n, (i, _) in delta.items()] if ctx.is_main else None, ctx
    )
    if ctx.is_main:
        idx = torch.cat([delta[n][0].reshape(-1).long().cpu() for n, _ in names] or [_EMPTY])
        val = torch.cat([delta[n][1].reshape(-1).float().cpu() for n, _ in names] or [_EMPTY])
    else:
        idx = val = None
    idx, val = broadcast_tensor(idx, ctx), broadcast_tensor(val, ctx)
    out, at = {}, 0
    for name, n in names:
        out[name] = (idx[at : at + n], val[at : at + n])
        at += n
    return out


_EMPTY = torch.empty(0)


class ShardedMeasurer(RankCommands, Measurer):
    """``Measurer`` over an FSDP2 ``model``; rank 0 calls it, the other ranks ``follow()``.

    ``source``: rank 0's full model that the shards must mirror (None: the shards are the
    model); followers pass ``dataset=None``: rank 0 sends them the sequences."""

    def __init__(
        self,
        model: torch.nn.Module,
        dataset: PageDataset | None,
        ctx: DistContext,
        *,
        own: int,
        control: int,
        salt: str,
        source: torch.nn.Module | None = None,
        batch_size: int = 64,
        control_pool: int = 1,
    ):
        super().__init__(
            model,
            dataset,
            own=own,
            control=control,
            salt=salt,
            device=str(ctx.device),
            control_pool=control_pool,
        )
        self.ctx, self.source, self.batch_size = ctx, source, batch_size
        self.stale = source is not None
        self._undo: list[contextlib.ExitStack] = []
        self._payload: SparseDelta | torch.Tensor | None = None

    # --- Measurer's seams (rank 0) -----------------------------------------------------
    def losses(self, seqs: torch.Tensor) -> torch.Tensor:
        if seqs.shape[0] == 0:  # nothing to compute: no collective
            return torch.empty(0, dtype=torch.float64)
        self._mirror()
        self._payload = seqs
        return self._cmd("losses")

    @contextlib.contextmanager
    def applied(self, delta: SparseDelta, scale: float) -> Iterator[None]:
        self._mirror()
        self._payload = delta
        self._cmd("apply", float(scale))
        try:
            yield
        finally:
            self._cmd("undo")

    def _mirror(self) -> None:
        """The shards <- ``source`` when it changed since (never while a delta is applied)."""
        if self.stale and not self._undo:
            self._cmd("load")
            self.stale = False

    def forget(self) -> None:
        super().forget()
        self.stale = self.source is not None

    # --- what every rank runs ------------------------------------------------------------
    def _take(self):
        got, self._payload = self._payload, None
        return got if self.ctx.is_main else None

    def _do_losses(self) -> torch.Tensor:
        seqs = broadcast_tensor(self._take(), self.ctx).cpu()
        return sharded_sequence_losses(self.model, seqs, self.ctx, batch_size=self.batch_size)

    def _do_apply(self, scale: float) -> None:
        delta = share_sparse(self._take(), self.ctx)
        stack = contextlib.ExitStack()
        stack.enter_context(delta_applied_to_shards(self.model, delta, scale, self.ctx))
        self._undo.append(stack)

    def _do_undo(self) -> None:
        self._undo.pop().close()

    def _do_load(self) -> None:
        reshard_all(self.model)
        shards = {n: local(p).view(-1) for n, p in self.model.named_parameters()}
        shapes = {n: tuple(p.shape) for n, p in self.model.named_parameters()}
        load_full_into_shards(shards, shapes, self.source, self.ctx)
