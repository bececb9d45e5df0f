"""The one narrow, async interface the neurons use to talk to a chain.

Two adapters implement it: ``SubtensorChain`` (bittensor SDK v11: finney, test,
a docker localnet or any ws/wss endpoint) and ``DevChainClient`` (this project's
embedded dev chain). Neurons never know which one they hold.

A Chain object is bound to one subnet (``netuid``) and to the keys it signs with
(a hotkey, and a coldkey where the operation needs it: registration, staking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .types import Metagraph, SubnetParams, WeightsResult


@runtime_checkable
class Chain(Protocol):
    netuid: int

    @property
    def hotkey(self) -> str:
        """The ss58 address of the hotkey this client signs with."""
        ...

    # --- blocks -----------------------------------------------------------
    async def block(self) -> int:
        """The current (best) block number."""
        ...

    async def wait_for_block(self, n: int, timeout: float | None = None) -> int:
        """Return once block ``n`` exists (the current block, >= n). TimeoutError past ``timeout``."""
        ...

    async def block_timestamp(self, n: int) -> float:
        """Unix time (seconds) at which block ``n`` was produced."""
        ...

    # --- subnet -----------------------------------------------------------
    async def subnet_params(self) -> SubnetParams: ...

    async def metagraph(self) -> Metagraph: ...

    async def uid_of(self, hotkey: str) -> int | None:
        """The uid ``hotkey`` holds on this subnet, or None."""
        ...

    # --- commitments ------------------------------------------------------
    async def commit(self, data: bytes) -> None:
        """Publish ``data`` as this hotkey's commitment (CommitmentTooLargeError, RateLimitedError)."""
        ...

    async def commitments(self) -> dict[str, bytes]:
        """Every commitment on the subnet, by hotkey ss58."""
        ...

    # --- weights ----------------------------------------------------------
    async def set_weights(
        self, uids: Sequence[int], weights: Sequence[float], version_key: int
    ) -> WeightsResult: ...

    async def weights_of(self, uid: int) -> dict[int, float]:
        """The weights row of ``uid`` in force on chain (revealed; normalised; {} if none)."""
        ...

    # --- set-up -----------------------------------------------------------
    async def register(self, hotkey: str | None = None) -> int:
        """Register ``hotkey`` (default: this client's) paying with the coldkey; returns its uid."""
        ...

    async def add_stake(self, amount_tao: float, hotkey: str | None = None) -> None:
        """Stake ``amount_tao`` from the coldkey to ``hotkey`` (default: this client's)."""
        ...

    async def close(self) -> None: ...
