"""``SubtensorChain``: the Chain protocol on the bittensor SDK v11 (finney, test, localnet, any ws URL).

Reads go through the SDK's typed reads and generated storage descriptors; writes go through
``bt.SetWeights`` (the SDK conforms weights to the subnet and picks plaintext or timelocked
commit-reveal) and, where no suitable intent exists, the raw call builders in ``bt.calls``:

- commitments: ``Commitments.set_commitment`` with one ``Raw<n>`` field (no intent exists);
- registration: the SDK's ``BurnedRegister`` intent, MEV-shielded as the SDK requires, when
  the chain runs the MevShield pallet; the raw ``burned_register`` call where it does not
  (local chains);
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

from .errors import (
    ChainError,
    InvalidRequestError,
    InvalidWeightsError,
    SubnetNotFoundError,
    TooManyRegistrationsError,
)
from .subtensor_commitments import commitment_bytes, commitment_info
from .subtensor_errors import is_pruned_state, is_transient, raise_for_result, to_chain_error
from .subtensor_retry import RetryPolicy, with_retry
from .subtensor_values import U16_MAX, checked_weights, neuron_from_sdk, result_block
from .types import MAX_COMMITMENT_BYTES, Metagraph, SubnetParams, WeightsResult

logger = logging.getLogger(__name__)

T = TypeVar("T")
RAO_PER_TAO = 10**9
REGISTER_ATTEMPTS = 10  # blocks to wait out MaxRegistrationsPerBlock
DEFAULT_WEIGHTS_RATE_LIMIT = 100  # subtensor's DefaultWeightsSetRateLimit


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
        try:
            ms = await self._call(
                lambda: self._client.query(st.Timestamp.Now, block=n),
                f"read timestamp of block {n}",
            )
        except ChainError as error:
            if not is_pruned_state(error.__cause__ or error):
                raise
            # Non-archive nodes prune state older than ~256 blocks: estimate from the head.
            head_ms = await self._call(
                lambda: self._client.query(st.Timestamp.Now, block=current), "read timestamp"
            )
            estimate = int(head_ms) / 1000.0 - (current - n) * await self._seconds_per_block()
            logger.debug("state of block %d is pruned; timestamp estimated %.1f", n, estimate)
            return estimate
        return int(ms) / 1000.0

    # --- subnet -----------------------------------------------------------
    async def subnet_params(self) -> SubnetParams:
        async def read() -> SubnetParams:
            view = await self._client.at()
            if not await view.query(st.SubtensorModule.NetworksAdded, [self.netuid]):
                raise SubnetNotFoundError(f"subnet {self.netuid} does not exist on {self.network}")
            m = st.SubtensorModule
            names = ("Tempo", "WeightsSetRateLimit", "MinAllowedWeights", "MaxWeightsLimit")
            names += ("CommitRevealWeightsEnabled", "RevealPeriodEpochs", "WeightsVersionKey")
            names += ("LastEpochBlock", "SubnetOwnerHotkey")
            values = await asyncio.gather(
                *(view.query(getattr(m, name), [self.netuid]) for name in names),
                view.query(m.StakeThreshold),
            )
            tempo, rate, min_w, max_w, cr, reveal, version, last_epoch, owner, threshold = values
            owner_uid = await view.query(m.Uids, [self.netuid, owner]) if owner else None
            return SubnetParams(
                netuid=self.netuid,
                tempo=int(tempo or 0),
                weights_rate_limit=int(DEFAULT_WEIGHTS_RATE_LIMIT if rate is None else rate),
                min_allowed_weights=int(min_w or 0),
                max_weight_limit=(int(max_w) if max_w is not None else U16_MAX) / U16_MAX,
                max_commitment_bytes=MAX_COMMITMENT_BYTES,
                commit_reveal=bool(cr),
                reveal_period_epochs=int(1 if reveal is None else reveal),
                weights_version=int(version or 0),
                stake_threshold=int(threshold or 0) / RAO_PER_TAO,
                last_epoch_block=int(last_epoch or 0),
                owner_uid=None if owner_uid is None else int(owner_uid),
            )

        return await self._call(read, "read subnet hyperparameters")

    async def metagraph(self) -> Metagraph:
        graph = await self._call(
            lambda: self._client.subnets.metagraph(self.netuid, commitments=False),
            "read the metagraph",
        )
        if graph is None:
            raise SubnetNotFoundError(f"subnet {self.netuid} does not exist on {self.network}")
        return Metagraph(
            netuid=self.netuid,
            block=int(graph.block),
            neurons=tuple(neuron_from_sdk(n) for n in graph.neurons),
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
        uid_list, weight_list = checked_weights(uids, weights)
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
        return WeightsResult(success=True, block=result_block(result), message=message)

    async def weights_of(self, uid: int) -> dict[int, float]:
        """The weights row of ``uid`` in force on chain (normalised to sum 1; {} if none)."""
        row = await self._call(
            lambda: self._client.query(st.SubtensorModule.Weights, [self.netuid, int(uid)]),
            f"read weights of uid {uid}",
        )
        pairs = [(int(d), int(w)) for d, w in (row or []) if int(w) > 0]
        total = sum(w for _, w in pairs)
        return {d: w / total for d, w in pairs} if total else {}

    # --- set-up -----------------------------------------------------------
    def _require_coldkey(self, action: str) -> Any:
        if self._coldkey is None:
            raise InvalidRequestError(f"{action} needs a coldkey; pass coldkey= to SubtensorChain")
        return self._coldkey

    async def register(self, hotkey: str | None = None) -> int:
        coldkey = self._require_coldkey("register")
        target = hotkey or self.hotkey
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                await self._submit(
                    lambda: self._register_once(coldkey, target),
                    f"register {target} on subnet {self.netuid}",
                )
                break
            except TooManyRegistrationsError:
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
                logger.info("registration limit reached this block; retrying next block")
                await self.wait_for_block(await self.block() + 1, timeout=120)
        uid = await self.uid_of(target)
        if uid is None:
            raise ChainError(f"registration of {target} was included but no uid was assigned")
        return uid

    async def _mev_shield_available(self) -> bool:
        try:
            return bool(await self._client.query(st.MevShield.NextKey))
        except Exception:  # noqa: BLE001 - no MevShield pallet on this chain
            return False

    async def _register_once(self, coldkey: Any, target: str) -> bt.ExtrinsicResult:
        """MEV-shielded ``BurnedRegister`` (SDK: ``mev_shield_required``) where the chain has
        the MevShield pallet; the plain call on chains without it (local nodes)."""
        if await self._mev_shield_available():
            intent = bt.BurnedRegister(netuid=self.netuid, hotkey_ss58=target)
            return await self._client.execute(intent, coldkey, wait_for_finalization=self._finalize)
        logger.info("chain has no MevShield key: registering %s unshielded", target)
        call = bt.calls.SubtensorModule.burned_register(netuid=self.netuid, hotkey=target)
        return await self._client.submit_call(
            call, coldkey, signer="coldkey", wait_for_finalization=self._finalize
        )

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
