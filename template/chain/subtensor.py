"""``SubtensorChain``: the Chain protocol on the bittensor SDK v11 (finney, test, localnet, any ws URL).

Reads go through the SDK's typed reads and generated storage descriptors; writes go through
``bt.SetWeights`` (the SDK conforms weights to the subnet and picks plaintext or timelocked
commit-reveal) and, where no suitable intent exists, the raw call builders in ``bt.calls``:

- commitments: ``Commitments.set_commitment`` with one ``Raw<n>`` field (no intent exists);
- registration: ``SubtensorModule.burned_register`` signed by the coldkey (the SDK's
  ``BurnedRegister`` intent insists on MEV-shielded submission, which local chains lack);
- staking: ``SubtensorModule.add_stake`` signed by the coldkey.

Every SDK failure is mapped to the typed errors of :mod:`template.chain.errors`; transient
connection failures are retried with bounded back-off after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import bittensor as bt
from bittensor import storage as st

from .errors import ChainError, InvalidRequestError, InvalidWeightsError
from .subtensor_commitments import commitment_bytes, commitment_info
from .subtensor_errors import is_transient, raise_for_result, to_chain_error
from .subtensor_retry import RetryPolicy, with_retry
from .types import MAX_COMMITMENT_BYTES, Metagraph, Neuron, SubnetParams, WeightsResult

logger = logging.getLogger(__name__)

T = TypeVar("T")
U16_MAX = 65535
RAO_PER_TAO = 10**9


class SubtensorChain:
    """A Chain bound to one subnet and one hotkey (plus an optional coldkey) on a subtensor node.

    ``hotkey`` / ``coldkey`` are signers: a ``bittensor.sp_core.Keypair`` (e.g. ``wallet.hotkey``
    of a ``bt.Wallet``) or any ``bt.Signer``. ``client`` injects a ready ``bt.Client`` (tests pass
    ``bt.Client("local", substrate=FakeSubstrate(...))``); otherwise one is built for
    ``network_or_endpoint`` (``finney``, ``test``, ``local`` or a ``ws(s)://`` URL).
    """

    def __init__(
        self,
        network_or_endpoint: str,
        netuid: int,
        hotkey: Any,
        coldkey: Any | None = None,
        *,
        client: bt.Client | None = None,
        retry: RetryPolicy | None = None,
        wait_for_finalization: bool = False,
    ):
        if not isinstance(netuid, int) or netuid < 0:
            raise InvalidRequestError(f"netuid must be a non-negative integer, got {netuid!r}")
        try:
            self._client = client if client is not None else bt.Client(network_or_endpoint)
        except ValueError as error:
            raise InvalidRequestError(str(error)) from error
        self.netuid = netuid
        self.network = self._client.network
        self.endpoint = self._client.endpoint
        self._hotkey = hotkey
        self._coldkey = coldkey
        self._retry = retry or RetryPolicy()
        self._finalize = wait_for_finalization
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._block_time: float | None = None

    def __repr__(self) -> str:
        return (
            f"SubtensorChain(network={self.network!r}, netuid={self.netuid}, hotkey={self.hotkey})"
        )

    @property
    def hotkey(self) -> str:
        return self._hotkey.ss58_address

    @property
    def coldkey(self) -> str | None:
        return self._coldkey.ss58_address if self._coldkey is not None else None

    # --- connection -------------------------------------------------------
    async def connect(self) -> SubtensorChain:
        """Open the connection (idempotent; retried with back-off)."""
        await with_retry(self._open, f"connect to {self.endpoint}", policy=self._retry)
        return self

    async def _open(self) -> None:
        async with self._connect_lock:
            if not self._connected:
                await self._client.connect()
                self._connected = True

    async def _reconnect(self) -> None:
        async with self._connect_lock:
            self._connected = False
            with contextlib.suppress(Exception):
                await self._client.close()
        await self._open()

    async def close(self) -> None:
        async with self._connect_lock:
            if self._connected:
                self._connected = False
                with contextlib.suppress(Exception):
                    await self._client.close()

    async def __aenter__(self) -> SubtensorChain:
        return await self.connect()

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    async def _call(self, op: Callable[[], Awaitable[T]], action: str) -> T:
        """Run one read (or a submit) with reconnect-and-retry on transient failures."""

        async def attempt() -> T:
            await self._open()
            return await op()

        return await with_retry(attempt, action, policy=self._retry, reconnect=self._reconnect)

    async def _submit(
        self, op: Callable[[], Awaitable[bt.ExtrinsicResult]], action: str, *, weights=False
    ) -> bt.ExtrinsicResult:
        """Submit through the SDK; typed error on failure, retry only transient pool races."""

        async def attempt() -> bt.ExtrinsicResult:
            try:
                result = await op()
            except ChainError:
                raise
            except bt.ChainError as error:
                if is_transient(error):
                    raise
                raise to_chain_error(error, action, weights=weights) from error
            except bt.BittensorError as error:
                raise to_chain_error(error, action, weights=weights) from error
            if not result.success and result.error is not None and is_transient(result.error):
                raise result.error
            raise_for_result(result, action, weights=weights)
            return result

        return await self._call(attempt, action)

    # --- blocks -----------------------------------------------------------
    async def block(self) -> int:
        return int(await self._call(self._client.block, "read the current block"))

    async def _seconds_per_block(self) -> float:
        if self._block_time is None:
            self._block_time = float(await self._call(self._client.block_time, "read block time"))
        return self._block_time

    async def wait_for_block(self, n: int, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        poll = min(2.0, max(0.05, (await self._seconds_per_block()) / 4))
        while True:
            current = await self.block()
            if current >= n:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"block {n} not reached within {timeout}s (chain at {current})")
            wait = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(wait)

    async def block_timestamp(self, n: int) -> float:
        current = await self.block()
        if n < 0 or n > current:
            raise InvalidRequestError(f"block {n} does not exist yet (chain at {current})")
        ms = await self._call(
            lambda: self._client.query(st.Timestamp.Now, block=n), f"read timestamp of block {n}"
        )
        return int(ms) / 1000.0

    # --- subnet -----------------------------------------------------------
    async def subnet_params(self) -> SubnetParams:
        async def read() -> SubnetParams:
            view = await self._client.at()
            if not await view.query(st.SubtensorModule.NetworksAdded, [self.netuid]):
                raise InvalidRequestError(f"subnet {self.netuid} does not exist on {self.network}")
            tempo, rate, min_w, max_w = await asyncio.gather(
                view.query(st.SubtensorModule.Tempo, [self.netuid]),
                view.query(st.SubtensorModule.WeightsSetRateLimit, [self.netuid]),
                view.query(st.SubtensorModule.MinAllowedWeights, [self.netuid]),
                view.query(st.SubtensorModule.MaxWeightsLimit, [self.netuid]),
            )
            return SubnetParams(
                netuid=self.netuid,
                tempo=int(tempo or 0),
                weights_rate_limit=int(rate or 0),
                min_allowed_weights=int(min_w or 0),
                max_weight_limit=(int(max_w) if max_w is not None else U16_MAX) / U16_MAX,
                max_commitment_bytes=MAX_COMMITMENT_BYTES,
            )

        return await self._call(read, "read subnet hyperparameters")

    async def metagraph(self) -> Metagraph:
        graph = await self._call(
            lambda: self._client.subnets.metagraph(self.netuid, commitments=False),
            "read the metagraph",
        )
        if graph is None:
            raise InvalidRequestError(f"subnet {self.netuid} does not exist on {self.network}")
        return Metagraph(
            netuid=self.netuid,
            block=int(graph.block),
            neurons=tuple(_neuron(n) for n in graph.neurons),
        )

    async def uid_of(self, hotkey: str) -> int | None:
        uid = await self._call(
            lambda: self._client.query(st.SubtensorModule.Uids, [self.netuid, hotkey]),
            "read uid",
        )
        return None if uid is None else int(uid)

    # --- commitments ------------------------------------------------------
    async def commit(self, data: bytes) -> None:
        info = commitment_info(data)  # size check before anything is signed
        call = bt.calls.Commitments.set_commitment(netuid=self.netuid, info=info)
        await self._submit(
            lambda: self._client.submit_call(
                call, self._hotkey, signer="hotkey", wait_for_finalization=self._finalize
            ),
            "commit",
        )

    async def commitments(self) -> dict[str, bytes]:
        """Commitments of the hotkeys currently registered on the subnet, by hotkey."""
        records = await self._call(
            lambda: self._client.subnets.commitments(self.netuid), "read commitments"
        )
        out: dict[str, bytes] = {}
        for hotkey, record in records.items():
            if getattr(record, "uid", None) is None:
                continue  # left behind by a deregistered hotkey
            data = commitment_bytes(record)
            if data is not None:
                out[str(hotkey)] = data
        return out

    # --- weights ----------------------------------------------------------
    async def set_weights(
        self, uids: Sequence[int], weights: Sequence[float], version_key: int
    ) -> WeightsResult:
        uid_list, weight_list = _checked_weights(uids, weights)
        try:
            intent = bt.SetWeights(
                netuid=self.netuid, uids=uid_list, weights=weight_list, version_key=version_key
            )
        except bt.BittensorError as error:
            raise InvalidWeightsError(str(error)) from error
        result = await self._submit(
            lambda: self._client.execute(
                intent, self._hotkey, wait_for_finalization=self._finalize
            ),
            "set weights",
            weights=True,
        )
        reveal_round = result.data.get("reveal_round")
        message = result.message or "Success"
        if reveal_round is not None:
            message = f"committed (commit-reveal); chain reveals at drand round {reveal_round}"
        return WeightsResult(success=True, block=_result_block(result), message=message)

    # --- set-up -----------------------------------------------------------
    def _require_coldkey(self, action: str) -> Any:
        if self._coldkey is None:
            raise InvalidRequestError(f"{action} needs a coldkey; pass coldkey= to SubtensorChain")
        return self._coldkey

    async def register(self, hotkey: str | None = None) -> int:
        coldkey = self._require_coldkey("register")
        target = hotkey or self.hotkey
        call = bt.calls.SubtensorModule.burned_register(netuid=self.netuid, hotkey=target)
        await self._submit(
            lambda: self._client.submit_call(
                call, coldkey, signer="coldkey", wait_for_finalization=self._finalize
            ),
            f"register {target} on subnet {self.netuid}",
        )
        uid = await self.uid_of(target)
        if uid is None:
            raise ChainError(f"registration of {target} was included but no uid was assigned")
        return uid

    async def add_stake(self, amount_tao: float, hotkey: str | None = None) -> None:
        coldkey = self._require_coldkey("add_stake")
        if not math.isfinite(amount_tao) or amount_tao <= 0:
            raise InvalidRequestError(f"stake amount must be positive, got {amount_tao}")
        target = hotkey or self.hotkey
        rao = int(round(amount_tao * RAO_PER_TAO))
        call = bt.calls.SubtensorModule.add_stake(
            hotkey=target, netuid=self.netuid, amount_staked=rao
        )
        await self._submit(
            lambda: self._client.submit_call(
                call, coldkey, signer="coldkey", wait_for_finalization=self._finalize
            ),
            f"stake {amount_tao} TAO to {target}",
        )


def _checked_weights(
    uids: Sequence[int], weights: Sequence[float]
) -> tuple[list[int], list[float]]:
    if len(uids) != len(weights):
        raise InvalidWeightsError(f"{len(uids)} uids but {len(weights)} weights")
    if not uids:
        raise InvalidWeightsError("no weights to set")
    try:
        uid_list = [int(u) for u in uids]
        weight_list = [float(w) for w in weights]
    except (TypeError, ValueError) as error:
        raise InvalidWeightsError(f"weights must be numbers ({error})") from error
    if any(u < 0 or u > U16_MAX for u in uid_list) or len(set(uid_list)) != len(uid_list):
        raise InvalidWeightsError("uids must be distinct integers in 0..65535")
    if any(not math.isfinite(w) or w < 0 for w in weight_list):
        raise InvalidWeightsError("weights must be finite and non-negative")
    if not any(w > 0 for w in weight_list):
        raise InvalidWeightsError("all weights are zero")
    return uid_list, weight_list


def _neuron(n: Any) -> Neuron:
    """One SDK ``MetagraphNeuron`` as the project's typed ``Neuron`` (scores already in [0, 1])."""
    return Neuron(
        uid=int(n.uid),
        hotkey=str(n.hotkey),
        coldkey=str(n.coldkey),
        stake=float(n.total_stake.amount),  # alpha on dynamic subnets
        validator_permit=bool(n.validator_permit),
        last_update=int(n.last_update),
        incentive=float(n.incentive),
        dividends=float(n.dividends),
        consensus=float(n.consensus),
        trust=float(n.trust),
        emission=float(n.emission.amount),
        registered_at=int(n.block_at_registration),
    )


def _result_block(result: bt.ExtrinsicResult) -> int | None:
    height, _, _ = (result.extrinsic_id or "").partition("-")
    return int(height) if height.isdigit() else None
