"""A miner's live weights while the previous window's outer step is still in flight.

A live miner starts window w before window w-1's aggregate exists; it arrives part-way
through the window. Two ways to spend the steps before it arrives:

- ``carry=False`` (stale start): the live weights restart from the global model, which lacks
  the aggregate, so those steps re-learn from the point window w-1 started from.
- ``carry=True`` (the network's default): the live weights carry on from where window w-1's
  training ended (``live = global - ahead``, ``ahead`` = window w-1's own delta). When the
  outer step arrives it is applied to both models and ``ahead`` is added back, so
  ``live = new global + this window's progress``: the miner's own unsent progress is swapped
  for the network's aggregate, and nothing of window w-1 is counted twice in window w.

The delta of a window is always only that window's training: ``global - live - ahead``.
``ahead`` lasts one window: if no outer step arrived while it was pending, the next window
restarts from the global model (the stale start), so the live weights never drift more than
one window of own progress away from the network's model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

Params = Mapping[str, torch.Tensor]


class LiveOverlap:
    """Bookkeeping of ``ahead`` for one miner: call ``begin``, ``rebase`` after every outer
    step applied to both models, ``end`` at the window's end, ``reset`` after a re-sync."""

    def __init__(self, carry: bool = True):
        self.carry = carry
        self.ahead: dict[str, torch.Tensor] | None = None  # live = global - ahead (+ progress)

    @torch.no_grad()
    def begin(self, global_params: Params, live: torch.nn.Module) -> None:
        """Start a window: keep the live weights when carrying on, else copy the global model."""
        if self.ahead is not None:
            return
        for name, p in live.named_parameters():
            p.copy_(global_params[name])

    @torch.no_grad()
    def rebase(self, live: torch.nn.Module) -> None:
        """After an outer step was applied to both models: swap own progress for it."""
        if self.ahead is None:
            return
        for name, p in live.named_parameters():
            p.add_(self.ahead[name].to(p.device, p.dtype))
        self.ahead = None

    @torch.no_grad()
    def end(self, global_params: Params, live: torch.nn.Module) -> dict[str, torch.Tensor]:
        """This window's delta (fp32, by name); sets what the next window carries."""
        pending = self.ahead
        delta = {}
        for name, p in live.named_parameters():
            d = global_params[name].float() - p.detach().float()
            if pending is not None:
                d = d - pending[name].to(d.device)
            delta[name] = d
        # carried progress that no outer step replaced is dropped: restart from the global
        self.ahead = delta if (self.carry and pending is None) else None
        return delta

    def reset(self) -> None:
        """The live weights were set to the global model (a re-sync): nothing is carried."""
        self.ahead = None
