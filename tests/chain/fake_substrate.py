"""An in-memory subtensor at the SDK's own ``Substrate`` seam (``bt.Client(substrate=...)``).

The SDK's contract below ``Client`` takes and returns plain decoded Python values (storage
reads, runtime-API results, composed calls, typed ``ExtrinsicResult``s), so a faithful fake
needs no SCALE codec and no network: ``SubtensorChain -> bt.Client -> SDK reads/intents ->
FakeSubstrate``. The fake models one subnet as strictly as subtensor for every rule the
adapter relies on: burned registration (``MaxRegistrationsPerBlock``, pruning of a full
subnet, MEV-shielded submission), stake credited as alpha at a price, validator permits
granted only at an epoch (``LastEpochBlock + tempo``), the stake threshold (a pool
rejection, ``Custom error: 1``), commitments with a per-tempo byte quota, and weights with
rate limit, version key, permit and min/max checks; commit-reveal is on by default
(``commit_timelocked_mechanism_weights``: the commit is stored, and revealed at the epoch
``RevealPeriodEpochs`` later, where a failing check drops it silently, as on the chain).
Old-block reads fail past ``state_pruning`` blocks, as on a non-archive node. Failures are
answered exactly as the RPC backend does: ``ExtrinsicResult(success=False, error=...)``.

The timelock ciphertext cannot be opened without drand, so the fake plays drand: it wraps
the SDK's encryptor (``timelock_oracle``) and remembers each ciphertext's plaintext.

Blocks advance with wall time (``block_time`` seconds per block); timestamps are derived
from the block number, so history is consistent. Every extrinsic is really signed by the
keypair the SDK hands over, and the signature is verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import time
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt
from bittensor.intents import weights as sdk_weights
from bittensor.result import chain_error_from_substrate_request
from bittensor.sp_core import verify

U16_MAX = 65535
RAO = 10**9
MIN_STAKE_RAO = 2_000_000  # chain minimum stake (0.002 TAO)


@dataclass
class FakeNeuron:
    uid: int
    hotkey: str
    coldkey: str
    registered_at: int
    stake_rao: int = 0  # alpha (in rao units) on this subnet
    last_update: int = 0
    validator_permit: bool = False
    incentive: int = 0  # u16 scores, as the runtime API returns them
    dividends: int = 0
    consensus: int = 0
    trust: int = 0
    rank: int = 0
    emission_rao: int = 0
    weights: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class FakeCall:
    """A composed call: the generated (module, function, params) plus its 'encoded' bytes."""

    module: str
    function: str
    params: dict[str, Any]

    @property
    def data(self) -> bytes:
        return json.dumps([self.module, self.function, _jsonable(self.params)]).encode()


class PoolRejection(Exception):
    """The transaction pool refuses the extrinsic before it is included (e.g. Custom error: 1)."""


class DispatchError(Exception):
    def __init__(self, name: str, docs: str = ""):
        super().__init__(name)
        self.name = name
        self.docs = docs or name


# ciphertext -> (uids, u16 values, version_key): what drand would let the chain decrypt.
TIMELOCK_PLAINTEXT: dict[bytes, tuple[list[int], list[int], int]] = {}


@contextlib.contextmanager
def timelock_oracle():
    """Wrap the SDK's timelock encryptor so the fake can 'decrypt' commits at their reveal."""
    real = sdk_weights._core.get_encrypted_commit_v2

    class _Core:
        def __getattr__(self, name):
            return getattr(_real_core, name)

        @staticmethod
        def get_encrypted_commit_v2(**kw):
            commit, reveal_round = real(**kw)
            TIMELOCK_PLAINTEXT[bytes(commit)] = (
                list(kw["uids"]),
                list(kw["weights"]),
                int(kw["version_key"]),
            )
            return commit, reveal_round

    _real_core = sdk_weights._core
    sdk_weights._core = _Core()
    try:
        yield
    finally:
        sdk_weights._core = _real_core


def _jsonable(value: Any) -> Any:
    if isinstance(value, FakeCall):
        return [value.module, value.function, _jsonable(value.params)]
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _payload_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    if isinstance(value, list | tuple):
        return bytes(int(b) for b in value)
    raise DispatchError("InvalidFieldPayload", f"unsupported Raw payload {type(value).__name__}")


class FakeSubstrate:
    """One subnet's chain state answering the ``bittensor.Substrate`` protocol."""

    def __init__(
        self,
        *,
        netuid: int = 1,
        block_time: float = 0.05,
        start_block: int = 100,
        tempo: int = 10,
        weights_rate_limit: int = 0,
        min_allowed_weights: int = 1,
        max_weights_limit: int = U16_MAX,
        burn_rao: int = RAO,
        max_validators: int = 64,
        max_uids: int = 256,
        require_validator_permit: bool = True,
        max_space: int = 3100,
        weights_version_key: int = 0,
        balances: dict[str, int] | None = None,
        subnet_exists: bool = True,
        sudo_key: str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",  # //Alice
        network_lock_rao: int = 100 * RAO,
        commit_reveal: bool = True,
        reveal_period_epochs: int = 1,
        stake_threshold_rao: int = 0,
        alpha_price: float = 2.0,  # TAO per alpha: 10 TAO staked is 5 alpha
        max_registrations_per_block: int = 1,
        immunity_period: int = 4096,
        state_pruning: int | None = None,  # blocks of state kept (None: archive)
        mev_shield: bool = False,
    ):
        self.endpoint = "ws://fake-substrate"
        self.token_symbols: dict[int, str] = {}
        self.netuid = netuid
        self.seconds_per_block = block_time
        self._t0 = time.monotonic()
        self._start = start_block
        self._genesis_ms = int(time.time() * 1000) - int(start_block * block_time * 1000)
        self.tempo = tempo
        self.weights_rate_limit = weights_rate_limit
        self.min_allowed_weights = min_allowed_weights
        self.max_weights_limit = max_weights_limit
        self.burn_rao = burn_rao
        self.max_validators = max_validators
        self.max_uids = max_uids
        self.require_validator_permit = require_validator_permit
        self.max_space = max_space
        self.weights_version_key = weights_version_key
        self.commit_reveal = commit_reveal
        self.reveal_period_epochs = reveal_period_epochs
        self.alpha_price = alpha_price
        self.max_registrations_per_block = max_registrations_per_block
        self.immunity_period = immunity_period
        self.state_pruning = state_pruning
        self.mev_key: bytes | None = bytes(1184) if mev_shield else None  # a valid ML-KEM key
        self.registration_allowed = True
        self.subnet_exists = subnet_exists
        self.subnet_started = subnet_exists
        self.subnet_owner: str | None = None
        self.subnet_owner_hotkey: str | None = None
        self.registered_network_at = 0
        self.sudo_key = sudo_key
        self.network_lock_rao = network_lock_rao
        self.start_call_delay = 10
        self.network_rate_limit = 1000
        self.stake_threshold = stake_threshold_rao
        self.last_epoch_block = start_block - start_block % max(1, tempo)
        self.epoch_index = 0
        self.weight_commits: list[tuple[int, str, int, bytes]] = []  # epoch, who, block, commit
        self.reveals: list[tuple[str, bool, str]] = []  # (hotkey, landed, why)
        self.signed_inner: dict[str, tuple[FakeCall, str]] = {}  # MEV-shield inner extrinsics
        self.included: dict[str, bt.ExtrinsicResult] = {}
        self.balances: dict[str, int] = dict(balances or {})
        self.owners: dict[str, str] = {}  # hotkey -> coldkey
        self.neurons: list[FakeNeuron] = []
        self.commitments: dict[str, dict] = {}  # hotkey -> CommitmentOf record
        self.used_space: dict[str, tuple[int, int]] = {}  # hotkey -> (epoch, bytes)
        self.submitted: list[tuple[str, str, str]] = []  # (module, function, signer ss58)
        self.nonces: dict[str, int] = {}
        self.connected = False
        self.connects = 0
        self.fail_reads = 0  # next N reads raise a transient RpcConnectionError
        self.fail_submits = 0  # next N submits are rejected as "priority is too low"

    # --- test helpers -----------------------------------------------------
    def fund(self, ss58: str, tao: float) -> None:
        self.balances[ss58] = self.balances.get(ss58, 0) + int(tao * RAO)

    def neuron_of(self, hotkey: str) -> FakeNeuron | None:
        return next((n for n in self.neurons if n.hotkey == hotkey), None)

    def set_scores(self, uid: int, **scores: float) -> None:
        """Set a uid's incentive/dividends/consensus/trust/rank as fractions in [0, 1]."""
        for name, value in scores.items():
            setattr(self.neurons[uid], name, round(value * U16_MAX))

    def head(self) -> int:
        block = self._start + int((time.monotonic() - self._t0) / self.seconds_per_block)
        while self.tempo > 0 and block >= self.last_epoch_block + self.tempo:
            self._run_epoch(self.last_epoch_block + self.tempo)
        return block

    def _run_epoch(self, block: int) -> None:
        """What the fake models of an epoch: the reveal of due commits, then new permits."""
        self.last_epoch_block = block
        self.epoch_index += 1
        if self.commit_reveal:
            due = self.epoch_index - self.reveal_period_epochs
            for epoch, who, committed_at, commit in sorted(self.weight_commits, key=lambda c: c[2]):
                if epoch == due:
                    self._reveal(who, committed_at, commit)
            self.weight_commits = [c for c in self.weight_commits if c[0] > due]
        self._refresh_permits()

    def _reveal(self, who: str, committed_at: int, commit: bytes) -> None:
        plain = TIMELOCK_PLAINTEXT.get(bytes(commit))
        neuron = self.neuron_of(who)
        if plain is None or neuron is None or neuron.registered_at > committed_at:
            self.reveals.append((who, False, "cannot decrypt or uid changed hands"))
            return
        uids, values, version_key = plain
        try:
            self._check_weights(neuron, uids, values, version_key)
        except DispatchError as failure:  # dropped silently, as on the chain
            self.reveals.append((who, False, failure.name))
            return
        neuron.weights = list(zip(uids, values, strict=True))
        self.reveals.append((who, True, "revealed"))

    def timestamp_ms(self, block: int) -> int:
        return self._genesis_ms + int(block * self.seconds_per_block * 1000)

    @staticmethod
    def hash_of(block: int) -> str:
        return "0x" + block.to_bytes(32, "big").hex()

    def _block_of(self, block_hash: str | None) -> int:
        return self.head() if block_hash is None else int(block_hash, 16)

    def _maybe_fail_read(self) -> None:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise bt.RpcConnectionError("injected: websocket closed")

    def _refresh_permits(self) -> None:
        """subtensor's is_topk_nonzero over threshold-filtered stake (ties: higher uid kept);
        the owner hotkey's uid always holds a permit."""
        owner = self.subnet_owner_hotkey
        counted = [
            n
            for n in self.neurons
            if n.stake_rao > 0 and (n.stake_rao >= self.stake_threshold or n.hotkey == owner)
        ]
        ranked = sorted(counted, key=lambda n: (-n.stake_rao, -n.uid))
        top = {n.uid for n in ranked[: self.max_validators]}
        for n in self.neurons:
            n.validator_permit = n.uid in top or (owner is not None and n.hotkey == owner)

    # --- Substrate protocol: display + lifecycle ----------------------------
    def balance(self, rao: int, netuid: int = 0) -> bt.Balance:
        return bt.Balance(int(rao), netuid, self.token_symbols.get(netuid) if netuid else None)

    async def connect(self) -> None:
        if not self.connected:
            self.connected = True
            self.connects += 1

    async def close(self) -> None:
        self.connected = False

    def _require_open(self) -> None:
        if not self.connected:
            raise bt.ConnectionNotReady("FakeSubstrate is not connected")

    # --- reads --------------------------------------------------------------
    async def block_hash(self, block: int | None = None) -> str:
        self._require_open()
        self._maybe_fail_read()
        head = self.head()
        if block is None:
            return self.hash_of(head)
        if block > head:
            raise bt.ChainError(f"block {block} not found")
        return self.hash_of(block)

    async def block_number(self) -> int:
        self._require_open()
        self._maybe_fail_read()
        return self.head()

    async def finalized_block_number(self) -> int:
        return max(0, self.head() - 2)

    async def block_time(self) -> float:
        return self.seconds_per_block

    async def spec_version(self) -> int:
        return 999

    async def get_block(self, block_number=None, block_hash=None) -> dict | None:
        number = block_number if block_number is not None else self._block_of(block_hash)
        return {"header": {"number": number, "hash": self.hash_of(number)}, "extrinsics": []}

    def _check_state_kept(self, block_hash: str | None) -> None:
        if block_hash is None or self.state_pruning is None:
            return
        if self._block_of(block_hash) < self.head() - self.state_pruning:
            raise bt.ChainError(f"State already discarded for {block_hash}")

    async def query(self, module, storage_function, params=None, block_hash=None) -> Any:
        self._require_open()
        self._maybe_fail_read()
        self._check_state_kept(block_hash)
        params = list(params or [])
        if (module, storage_function) == ("MevShield", "NextKey"):
            return self.mev_key
        if (module, storage_function) == ("SubtensorModule", "StakeThreshold"):
            return self.stake_threshold
        key = (module, storage_function)
        ours = bool(params) and params[0] == self.netuid and self.subnet_exists
        if key == ("Timestamp", "Now"):
            return self.timestamp_ms(self._block_of(block_hash))
        if key == ("System", "Account"):
            return {"nonce": 0, "data": {"free": self.balances.get(params[0], 0), "reserved": 0}}
        if module == "SubtensorModule":
            if storage_function == "Owner":
                return self.owners.get(params[0])
            if storage_function == "LastUpdate":
                return [n.last_update for n in self.neurons] if ours else []
            if not ours:
                return None
            if storage_function == "Uids":
                n = self.neuron_of(params[1])
                return None if n is None else n.uid
            if storage_function == "Weights":
                uid = int(params[1])
                return list(self.neurons[uid].weights) if uid < len(self.neurons) else []
            simple = {
                "NetworksAdded": True,
                "Tempo": self.tempo,
                "WeightsSetRateLimit": self.weights_rate_limit,
                "MinAllowedWeights": self.min_allowed_weights,
                "MaxWeightsLimit": self.max_weights_limit,
                "CommitRevealWeightsEnabled": self.commit_reveal,
                "RevealPeriodEpochs": self.reveal_period_epochs,
                "LastEpochBlock": self.last_epoch_block,
                "SubnetEpochIndex": self.epoch_index,
                "PendingEpochAt": 0,
                "BlocksSinceLastStep": self.head() - self.last_epoch_block,
                "SubnetOwnerHotkey": self.subnet_owner_hotkey,
                "SubnetEpochConsensus": "Yuma",
                "Burn": self.burn_rao,
                "SubnetLocked": self.network_lock_rao,
                "SubnetOwner": self.subnet_owner,
                "WeightsVersionKey": self.weights_version_key,
                "ValidatorPermit": [n.validator_permit for n in self.neurons],
            }
            return simple.get(storage_function)
        if key == ("Commitments", "CommitmentOf") and ours:
            return self.commitments.get(params[1])
        return None

    async def map_has_entries(self, module, storage_function, params, block_hash=None) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(self, module, storage_function, params=None, block_hash=None):
        self._require_open()
        self._maybe_fail_read()
        params = list(params or [])
        ours = bool(params) and params[0] == self.netuid and self.subnet_exists
        key = (module, storage_function)
        if key == ("SubtensorModule", "TokenSymbol"):
            # Not modelled; raising keeps Client.connect from writing a symbol cache to $HOME.
            raise bt.ChainError("TokenSymbol is not modelled by FakeSubstrate")
        if key == ("Commitments", "CommitmentOf"):
            return list(self.commitments.items()) if ours else []
        if key == ("SubtensorModule", "Uids"):
            return [(n.hotkey, n.uid) for n in self.neurons] if ours else []
        return []

    async def query_batch(self, module, storage_function, param_sets, block_hash=None):
        return [await self.query(module, storage_function, p, block_hash) for p in param_sets]

    async def runtime_call(self, api, method, params, block_hash=None) -> Any:
        self._require_open()
        self._maybe_fail_read()
        if (api, method) == ("SubnetInfoRuntimeApi", "get_metagraph"):
            if list(params) != [self.netuid] or not self.subnet_exists:
                return None
            return self._metagraph(self._block_of(block_hash))
        raise bt.ChainError(f"runtime API {api}.{method} is not modelled by FakeSubstrate")

    def _metagraph(self, block: int) -> dict:
        ns = self.neurons
        owner = ns[0] if ns else None
        return {
            "netuid": self.netuid,
            "name": list(b"fake"),
            "symbol": list("α".encode()),
            "block": block,
            "tempo": self.tempo,
            "last_step": self.last_epoch_block,
            "blocks_since_last_step": block - self.last_epoch_block,
            "owner_hotkey": owner.hotkey if owner else "",
            "owner_coldkey": owner.coldkey if owner else "",
            "network_registered_at": 0,
            "num_uids": len(ns),
            "max_uids": self.max_uids,
            "hotkeys": [n.hotkey for n in ns],
            "coldkeys": [n.coldkey for n in ns],
            "active": [True for _ in ns],
            "validator_permit": [n.validator_permit for n in ns],
            "last_update": [n.last_update for n in ns],
            "block_at_registration": [n.registered_at for n in ns],
            "rank": [n.rank for n in ns],
            "trust": [n.trust for n in ns],
            "consensus": [n.consensus for n in ns],
            "incentives": [n.incentive for n in ns],
            "dividends": [n.dividends for n in ns],
            "pruning_score": [0 for _ in ns],
            "emission": [n.emission_rao for n in ns],
            "alpha_stake": [n.stake_rao for n in ns],
            "tao_stake": [0 for _ in ns],
            "total_stake": [n.stake_rao for n in ns],
            "axons": [{"ip": 0, "port": 0, "ip_type": 4} for _ in ns],
            "identities": [None for _ in ns],
            "tao_in": 0,
            "alpha_in": 0,
            "identity": None,
        }

    async def constant(self, module, name) -> Any:
        if (module, name) == ("Aura", "SlotDuration"):
            return int(self.seconds_per_block * 1000)
        raise bt.ChainError(f"constant {module}.{name} is not modelled by FakeSubstrate")

    async def decode_scale(self, type_string, data) -> Any:
        raise bt.ChainError("decode_scale is not modelled by FakeSubstrate")

    async def blocks(self, *, finalized: bool = False):
        last = self.head()
        while True:
            await asyncio.sleep(self.seconds_per_block / 2)
            now = self.head()
            if now > last:
                last = now
                yield {"header": {"number": now, "parentHash": self.hash_of(now - 1)}}

    async def events(self, block_hash=None) -> list[dict]:
        return []

    # --- calls, fees, nonces ------------------------------------------------
    async def compose(self, call) -> FakeCall:
        module, function, params = call
        return FakeCall(module, function, dict(params))

    async def estimate_fee(self, call, keypair) -> bt.Balance:
        return bt.Balance.from_rao(1_000)

    async def estimate_weight(self, call, keypair) -> dict:
        return {"ref_time": 1, "proof_size": 1}

    async def account_next_index(self, address: str) -> int:
        return self.nonces.get(address, 0)

    async def mev_next_key(self) -> bytes | None:
        return self.mev_key

    # --- writes -------------------------------------------------------------
    async def submit(
        self,
        call,
        keypair,
        *,
        nonce=None,
        period=None,
        wait_for_inclusion: bool = True,
        wait_for_finalization: bool = True,
    ) -> bt.ExtrinsicResult:
        self._require_open()
        if not isinstance(call, FakeCall):
            call = await self.compose(call)
        signer = keypair.ss58_address
        payload = b"fake-extrinsic:" + call.data
        signature = keypair.sign(payload)
        if inspect.isawaitable(signature):
            signature = await signature
        if not verify(payload, bytes(signature), signer):
            error = bt.ChainError("Transaction has a bad signature", "BadProof")
            return bt.ExtrinsicResult(success=False, message=error.message, error=error)
        if self.fail_submits > 0:
            self.fail_submits -= 1
            error = bt.ChainError("Priority is too low: (1 vs 1)")
            return bt.ExtrinsicResult(success=False, message=error.message, error=error)
        block = self.head()
        self.nonces[signer] = self.nonces.get(signer, 0) + 1
        self.submitted.append((call.module, call.function, signer))
        extrinsic_id = f"{block}-0001"
        handler = getattr(self, f"_do_{call.module}_{call.function}", None)
        try:
            if handler is None:
                raise DispatchError(
                    "CallNotModelled", f"{call.module}.{call.function} not modelled"
                )
            events = handler(signer, block, **call.params)
        except PoolRejection as rejection:
            error = chain_error_from_substrate_request(Exception(str(rejection)))
            return bt.ExtrinsicResult(success=False, message=error.message, error=error)
        except DispatchError as failure:
            error = bt.ChainError(failure.docs, failure.name)
            return bt.ExtrinsicResult(
                success=False,
                message=failure.docs,
                block_hash=self.hash_of(block),
                extrinsic_id=extrinsic_id,
                error=error,
            )
        return bt.ExtrinsicResult(
            success=True,
            message="Success",
            block_hash=self.hash_of(block),
            extrinsic_id=extrinsic_id,
            fee=bt.Balance.from_rao(1_000),
            events=events,
        )

    async def submit_signed(self, extrinsic, keypair, **kwargs) -> bt.ExtrinsicResult:
        raise bt.ChainError("submit_signed is not modelled by FakeSubstrate")

    # --- MEV shield: the block author decrypts the carrier and includes the inner call ----
    async def sign_extrinsic(self, call, keypair, *, nonce: int, period: int):
        if not isinstance(call, FakeCall):
            call = await self.compose(call)
        payload = b"fake-inner:" + call.data + str(nonce).encode()
        signature = keypair.sign(payload)
        if inspect.isawaitable(signature):
            signature = await signature
        inner_hash = "0x" + hashlib.sha256(payload + bytes(signature)).hexdigest()
        self.signed_inner[inner_hash] = (call, keypair.ss58_address)
        return payload, inner_hash

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str):
        return self.included.get(extrinsic_hash)

    def _do_MevShield_submit_encrypted(self, signer, block, ciphertext):
        # The fake author cannot run ML-KEM decapsulation: it includes the inner extrinsic
        # this signer signed last (what decryption would give back), under its own hash.
        mine = [(h, c) for h, (c, who) in self.signed_inner.items() if who == signer]
        if not mine or len(bytes(ciphertext)) < 1088:
            raise DispatchError("InvalidCiphertext", "carrier does not hold a signed extrinsic")
        inner_hash, call = mine[-1]
        del self.signed_inner[inner_hash]
        handler = getattr(self, f"_do_{call.module}_{call.function}", None)
        try:
            if handler is None:
                raise DispatchError("CallNotModelled", f"{call.module}.{call.function}")
            events = handler(signer, block, **call.params)
            result = bt.ExtrinsicResult(
                success=True,
                message="Success",
                block_hash=self.hash_of(block),
                extrinsic_id=f"{block}-0002",
                events=events,
            )
        except DispatchError as failure:
            error = bt.ChainError(failure.docs, failure.name)
            result = bt.ExtrinsicResult(
                success=False,
                message=failure.docs,
                block_hash=self.hash_of(block),
                extrinsic_id=f"{block}-0002",
                error=error,
            )
        self.submitted.append((call.module, call.function, signer))
        self.included[inner_hash] = result
        return [self._event("MevShield", "EncryptedSubmitted", who=signer)]

    # --- dispatch (the subtensor rules this project relies on) ---------------
    def _check_subnet(self, netuid: int) -> None:
        if netuid != self.netuid or not self.subnet_exists:
            raise DispatchError("SubnetNotExists", f"subnet {netuid} does not exist")

    def _pay(self, who: str, rao: int, error: str = "NotEnoughBalanceToStake") -> None:
        if self.balances.get(who, 0) < rao:
            raise DispatchError(error, "balance too low")
        self.balances[who] -= rao

    @staticmethod
    def _event(module: str, name: str, **attributes) -> dict:
        return {"event": {"module_id": module, "event_id": name, "attributes": attributes}}

    def _do_SubtensorModule_burned_register(self, signer, block, netuid, hotkey):
        self._check_subnet(netuid)
        if not self.registration_allowed:
            raise DispatchError("SubNetRegistrationDisabled")
        if self.neuron_of(hotkey) is not None:
            raise DispatchError("HotKeyAlreadyRegisteredInSubNet", "hotkey already registered")
        if self.owners.get(hotkey, signer) != signer:
            raise DispatchError("NonAssociatedColdKey", "hotkey belongs to another coldkey")
        this_block = sum(1 for n in self.neurons if n.registered_at == block)
        if this_block >= self.max_registrations_per_block:
            raise DispatchError("TooManyRegistrationsThisBlock", "registration limit this block")
        if self.balances.get(signer, 0) < self.burn_rao:
            raise DispatchError("NotEnoughBalanceToStake", "balance too low to register")
        if len(self.neurons) >= self.max_uids:
            uid = self._uid_to_prune(block)
            if uid is None:
                raise DispatchError("NoNeuronIdAvailable", "every uid is still immune")
            old = self.neurons[uid]
            self.commitments.pop(old.hotkey, None)
            for n in self.neurons:
                n.weights = [(d, w) for d, w in n.weights if d != uid]
        else:
            uid = len(self.neurons)
            self.neurons.append(None)  # type: ignore[arg-type]
        self.balances[signer] -= self.burn_rao
        self.owners[hotkey] = signer
        self.neurons[uid] = FakeNeuron(uid, hotkey, signer, registered_at=block)
        return [self._event("SubtensorModule", "NeuronRegistered", netuid=netuid, uid=uid)]

    def _uid_to_prune(self, block: int) -> int | None:
        """Non-immune, not the owner's, lowest emission, then oldest, then lowest uid."""
        candidates = [
            n
            for n in self.neurons
            if n.registered_at + self.immunity_period <= block
            and n.hotkey != self.subnet_owner_hotkey
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda n: (n.emission_rao, n.registered_at, n.uid)).uid

    def _do_SubtensorModule_add_stake(self, signer, block, hotkey, netuid, amount_staked):
        self._check_subnet(netuid)
        if not self.subnet_started:
            raise DispatchError("SubtokenDisabled", "subnet not started (start_call)")
        if hotkey not in self.owners:
            raise DispatchError("HotKeyAccountNotExists", "hotkey account does not exist")
        if amount_staked < MIN_STAKE_RAO:
            raise DispatchError("AmountTooLow", "stake below the chain minimum")
        if self.balances.get(signer, 0) < amount_staked:
            raise DispatchError("NotEnoughBalanceToStake", "not enough balance to stake")
        self.balances[signer] -= amount_staked
        alpha = int(amount_staked / self.alpha_price)  # bought from the subnet's pool
        neuron = self.neuron_of(hotkey)
        if neuron is not None:
            neuron.stake_rao += alpha  # permits follow at the next epoch, not now
        return [self._event("SubtensorModule", "StakeAdded", hotkey=hotkey, amount=alpha)]

    def _check_weights(self, neuron: FakeNeuron, dests, weights, version_key) -> None:
        """set_weights' content checks (plaintext at dispatch; commit-reveal at the reveal)."""
        if neuron.stake_rao < self.stake_threshold and neuron.hotkey != self.subnet_owner_hotkey:
            raise DispatchError("NotEnoughStakeToSetWeights")
        if version_key < self.weights_version_key:
            raise DispatchError("IncorrectWeightVersionKey")
        if len(dests) != len(weights):
            raise DispatchError("WeightVecNotEqualSize")
        if len(set(dests)) != len(dests):
            raise DispatchError("DuplicateUids")
        if any(u < 0 or u >= len(self.neurons) for u in dests):
            raise DispatchError("UidVecContainInvalidOne")
        self_weight = list(dests) == [neuron.uid]
        owner = neuron.hotkey == self.subnet_owner_hotkey
        if self.require_validator_permit and not (neuron.validator_permit or self_weight or owner):
            raise DispatchError("NeuronNoValidatorPermit", "hotkey has no validator permit")
        need = min(self.min_allowed_weights, len(self.neurons))
        if not self_weight and len(dests) < need:
            raise DispatchError("WeightVecLengthIsLow")
        total = sum(weights)
        if not self_weight and total and max(weights) * U16_MAX > self.max_weights_limit * total:
            raise DispatchError("MaxWeightExceeded")

    def _weights_caller(self, netuid, mecid, signer, block) -> FakeNeuron:
        if netuid != self.netuid or mecid != 0:
            raise DispatchError("MechanismDoesNotExist")
        neuron = self.neuron_of(signer)
        if neuron is None:
            raise DispatchError("HotKeyNotRegisteredInSubNet", "hotkey not registered on subnet")
        since = block - neuron.last_update
        if self.weights_rate_limit and neuron.last_update and since < self.weights_rate_limit:
            raise DispatchError("SettingWeightsTooFast", "weights set too fast")
        return neuron

    def _do_SubtensorModule_set_mechanism_weights(
        self, signer, block, netuid, mecid, dests, weights, version_key
    ):
        neuron = self._weights_caller(netuid, mecid, signer, block)
        if self.commit_reveal:
            raise DispatchError("CommitRevealEnabled", "use commit_timelocked_mechanism_weights")
        if neuron.stake_rao < self.stake_threshold and neuron.hotkey != self.subnet_owner_hotkey:
            raise PoolRejection("Invalid Transaction: Custom error: 1")  # StakeAmountTooLow
        self._check_weights(neuron, dests, weights, version_key)
        neuron.weights = list(zip(dests, weights, strict=True))
        neuron.last_update = block
        return [self._event("SubtensorModule", "WeightsSet", netuid=netuid, uid=neuron.uid)]

    def _do_SubtensorModule_commit_timelocked_mechanism_weights(
        self, signer, block, netuid, mecid, commit, reveal_round, commit_reveal_version
    ):
        neuron = self._weights_caller(netuid, mecid, signer, block)
        if not self.commit_reveal:
            raise DispatchError("CommitRevealDisabled")
        if commit_reveal_version != sdk_weights.DEFAULT_COMMIT_REVEAL_VERSION:
            raise DispatchError("IncorrectCommitRevealVersion")
        mine = [c for c in self.weight_commits if c[1] == signer]
        if len(mine) >= 10:
            raise DispatchError("TooManyUnrevealedCommits")
        self.weight_commits.append((self.epoch_index, signer, block, _payload_bytes(commit)))
        neuron.last_update = block  # the commit counts as activity and for the rate limit
        return [self._event("SubtensorModule", "TimelockedWeightsCommitted", who=signer)]

    def _do_Commitments_set_commitment(self, signer, block, netuid, info):
        if netuid != self.netuid or self.neuron_of(signer) is None:
            raise DispatchError("AccountNotAllowedCommit", "hotkey not registered on subnet")
        fields = list((info or {}).get("fields") or [])
        if len(fields) > 3:
            raise DispatchError("TooManyFieldsInCommitmentInfo")
        decoded, size = [], 0
        for entry in fields:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise DispatchError("InvalidField", f"bad commitment field {entry!r}")
            ((variant, value),) = entry.items()
            data = _payload_bytes(value)
            if not variant.startswith("Raw") or variant != f"Raw{len(data)}" or len(data) > 128:
                raise DispatchError("InvalidField", f"{variant} cannot hold {len(data)} bytes")
            decoded.append({variant: "0x" + data.hex()})  # reads return Raw payloads as hex
            size += len(data)
        epoch = block // max(1, self.tempo)
        used_epoch, used = self.used_space.get(signer, (epoch, 0))
        used = used if used_epoch == epoch else 0
        used += max(100, size)
        if used > self.max_space:
            raise DispatchError("SpaceLimitExceeded", "commitment space quota used up")
        self.used_space[signer] = (epoch, used)
        self.commitments[signer] = {"deposit": 0, "block": block, "info": {"fields": decoded}}
        return [self._event("Commitments", "Commitment", netuid=netuid, who=signer)]

    # --- subnet creation, sudo and transfers (the localnet set-up path) ------
    def _do_SubtensorModule_register_network(self, signer, block, hotkey):
        if self.subnet_exists:
            raise DispatchError("SubnetLimitReached", "the fake holds a single subnet")
        self._pay(signer, self.network_lock_rao, "NotEnoughBalanceToPayNetworkRegistration")
        self.subnet_exists, self.subnet_owner = True, signer
        self.subnet_owner_hotkey = hotkey
        self.registered_network_at = block
        self.owners.setdefault(hotkey, signer)
        self.neurons.append(FakeNeuron(0, hotkey, signer, registered_at=block))
        return [self._event("SubtensorModule", "NetworkAdded", netuid=self.netuid, mechanism=1)]

    def _do_SubtensorModule_start_call(self, signer, block, netuid):
        self._check_subnet(netuid)
        if signer != self.subnet_owner:
            raise DispatchError("NotSubnetOwner")
        if self.subnet_started:
            raise DispatchError("FirstEmissionBlockNumberAlreadySet")
        if block - self.registered_network_at < self.start_call_delay:
            raise DispatchError("NeedWaitingMoreBlocksToStarCall", "start call delay not passed")
        self.subnet_started = True
        return [self._event("SubtensorModule", "FirstEmissionBlockNumberSet", netuid=netuid)]

    def _do_Balances_transfer_keep_alive(self, signer, block, dest, value):
        self._pay(signer, int(value), "InsufficientBalance")
        self.balances[dest] = self.balances.get(dest, 0) + int(value)
        return [self._event("Balances", "Transfer", to=dest, amount=int(value))]

    def _do_Sudo_sudo(self, signer, block, call):
        if signer != self.sudo_key:
            raise DispatchError("RequireSudo", "sender must be the sudo key")
        handler = getattr(self, f"_root_{call.module}_{call.function}", None)
        if handler is None:
            raise DispatchError("CallNotModelled", f"{call.module}.{call.function} not modelled")
        handler(**call.params)
        return [self._event("Sudo", "Sudid", sudo_result={"Ok": None})]

    def _root_AdminUtils_sudo_set_start_call_delay(self, delay):
        self.start_call_delay = int(delay)

    def _root_AdminUtils_sudo_set_network_rate_limit(self, rate_limit):
        self.network_rate_limit = int(rate_limit)

    def _root_AdminUtils_sudo_set_stake_threshold(self, min_stake):
        self.stake_threshold = int(min_stake)

    def _root_AdminUtils_sudo_set_commit_reveal_weights_enabled(self, netuid, enabled):
        self._check_subnet(netuid)
        self.commit_reveal = bool(enabled)

    def _root_AdminUtils_sudo_set_weights_set_rate_limit(self, netuid, weights_set_rate_limit):
        self._check_subnet(netuid)
        self.weights_rate_limit = int(weights_set_rate_limit)

    def _root_AdminUtils_sudo_set_tempo(self, netuid, tempo):
        self._check_subnet(netuid)
        self.tempo = int(tempo)

    def _root_AdminUtils_sudo_set_min_allowed_weights(self, netuid, min_allowed_weights):
        self._check_subnet(netuid)
        self.min_allowed_weights = int(min_allowed_weights)

    def _root_AdminUtils_sudo_set_network_registration_allowed(self, netuid, registration_allowed):
        self._check_subnet(netuid)
        self.registration_allowed = bool(registration_allowed)
