"""``DevChainClient``: the ``Chain`` protocol over the dev chain's HTTP API."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Sequence

import aiohttp

from ..errors import (
    ConnectionLostError,
    InvalidRequestError,
    InvalidWeightsError,
    TooManyRegistrationsError,
)
from ..types import Metagraph, Neuron, SubnetParams, WeightsResult
from .auth import sign_request
from .errors import to_chain_error

logger = logging.getLogger(__name__)

RETRIES = 5
BACKOFF_S = 0.2  # doubles per retry: 0.2, 0.4, 0.8, 1.6 s
NEURON_FIELDS = [
    "uid",
    "hotkey",
    "coldkey",
    "stake",
    "validator_permit",
    "last_update",
    "incentive",
    "dividends",
    "consensus",
    "trust",
    "emission",
    "registered_at",
]


class DevChainClient:
    """A Chain bound to one subnet and the keys it signs with.

    Writes are signed with btauth/1: weights and commitments by ``hotkey``; registration,
    staking and transfers by ``coldkey`` (required for those).
    """

    def __init__(self, url: str, netuid: int, hotkey, coldkey=None):
        self.url = url.rstrip("/")
        self.netuid = netuid
        self._hotkey = hotkey
        self._coldkey = coldkey
        self._session: aiohttp.ClientSession | None = None
        self._node: str | None = None

    @property
    def hotkey(self) -> str:
        return self._hotkey.ss58_address

    @property
    def coldkey(self) -> str | None:
        return None if self._coldkey is None else self._coldkey.ss58_address

    async def __aenter__(self) -> DevChainClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> DevChainClient:
        """Check the node answers (ConnectionLostError if not) and learn its identity."""
        await self._node_ss58()
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- transport ----------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._session

    async def _request(self, method: str, path: str, body: dict | None = None, key=None):
        """One call with bounded retries on connection errors; server errors become ChainErrors."""
        raw = b"" if body is None else json.dumps(body).encode()
        last: Exception | None = None
        for attempt in range(RETRIES):
            headers = {"Content-Type": "application/json"}
            if key is not None:  # each attempt signs a fresh nonce
                headers.update(sign_request(key, method, path, raw, await self._node_ss58()))
            try:
                async with self._http().request(
                    method, self.url + path, data=raw or None, headers=headers
                ) as resp:
                    payload = await resp.json(content_type=None)
                    if resp.status >= 400:
                        err = payload.get("error", {}) if isinstance(payload, dict) else {}
                        raise to_chain_error(
                            err.get("code", ""), err.get("message", f"HTTP {resp.status}")
                        )
                    return payload
            except (TimeoutError, aiohttp.ClientConnectionError) as e:
                last = e
                logger.debug("dev chain %s %s failed (%s), retry %d", method, path, e, attempt)
                await asyncio.sleep(BACKOFF_S * 2**attempt)
            except (aiohttp.ContentTypeError, json.JSONDecodeError) as e:
                raise InvalidRequestError(f"dev chain sent a non-JSON answer: {e}") from None
        raise ConnectionLostError(f"dev chain at {self.url} unreachable: {last}")

    async def _node_ss58(self) -> str:
        if self._node is None:
            self._node = (await self._request("GET", "/info"))["node"]
        return self._node

    def _need_coldkey(self):
        if self._coldkey is None:
            raise InvalidRequestError("this operation is signed by a coldkey; pass coldkey=...")
        return self._coldkey

    # --- blocks -------------------------------------------------------------
    async def block(self) -> int:
        return int((await self._request("GET", "/block"))["block"])

    async def wait_for_block(self, n: int, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 10.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                current = await self.block()
                if current >= n:
                    return current
                raise TimeoutError(f"block {n} not reached within {timeout}s (at {current})")
            wait = min(left, 10.0)
            current = int(
                (await self._request("GET", f"/block?wait_for={n}&timeout={wait:.3f}"))["block"]
            )
            if current >= n:
                return current

    async def block_timestamp(self, n: int) -> float:
        return float((await self._request("GET", f"/blocks/{int(n)}"))["timestamp"])

    # --- subnet -------------------------------------------------------------
    async def subnet_info(self) -> dict:
        """Owner, every hyperparameter and the last epoch block of this subnet."""
        return await self._request("GET", f"/subnets/{self.netuid}")

    async def subnet_params(self) -> SubnetParams:
        info = await self.subnet_info()
        p = info["params"]
        return SubnetParams(
            netuid=self.netuid,
            tempo=p["tempo"],
            weights_rate_limit=p["weights_rate_limit"],
            min_allowed_weights=p["min_allowed_weights"],
            max_weight_limit=p["max_weight_limit"],
            max_commitment_bytes=p["max_commitment_bytes"],
            commit_reveal=bool(p["commit_reveal"]),
            reveal_period_epochs=p["reveal_period_epochs"],
            weights_version=p["weights_version"],
            stake_threshold=p["stake_threshold"],
            last_epoch_block=info["last_epoch"],
            owner_uid=info["owner_uid"],
        )

    async def metagraph(self) -> Metagraph:
        d = await self._request("GET", f"/subnets/{self.netuid}/metagraph")
        neurons = tuple(Neuron(**{k: n[k] for k in NEURON_FIELDS}) for n in d["neurons"])
        return Metagraph(netuid=self.netuid, block=d["block"], neurons=neurons)

    async def uid_of(self, hotkey: str) -> int | None:
        n = (await self.metagraph()).by_hotkey(hotkey)
        return None if n is None else n.uid

    async def weights(self) -> list[dict]:
        """Every weight in force as ``{"src", "dst", "w"}`` (normalised rows; with commit-reveal
        only revealed weights)."""
        return await self._request("GET", f"/subnets/{self.netuid}/weights")

    async def weights_of(self, uid: int) -> dict[int, float]:
        return {int(r["dst"]): float(r["w"]) for r in await self.weights() if r["src"] == uid}

    # --- commitments --------------------------------------------------------
    async def commit(self, data: bytes) -> None:
        body = {"netuid": self.netuid, "data": bytes(data).hex()}
        await self._request("POST", "/tx/commit", body, key=self._hotkey)

    async def commitments(self) -> dict[str, bytes]:
        d = await self._request("GET", f"/subnets/{self.netuid}/commitments")
        return {hk: bytes.fromhex(v["data"]) for hk, v in d.items()}

    # --- weights ------------------------------------------------------------
    async def set_weights(
        self, uids: Sequence[int], weights: Sequence[float], version_key: int
    ) -> WeightsResult:
        if not all(math.isfinite(float(w)) for w in weights):
            raise InvalidWeightsError("weights must be finite numbers")
        body = {
            "netuid": self.netuid,
            "uids": [int(u) for u in uids],
            "weights": [float(w) for w in weights],
            "version_key": int(version_key),
        }
        d = await self._request("POST", "/tx/set_weights", body, key=self._hotkey)
        return WeightsResult(success=True, block=d["block"], message="weights set")

    # --- set-up -------------------------------------------------------------
    async def register(self, hotkey: str | None = None, attempts: int = 20) -> int:
        """Burned registration; waits a block and retries while the per-block limit is hit."""
        body = {"netuid": self.netuid, "hotkey": hotkey or self.hotkey}
        for attempt in range(attempts):
            try:
                d = await self._request("POST", "/tx/register", body, self._need_coldkey())
                return int(d["uid"])
            except TooManyRegistrationsError:
                if attempt == attempts - 1:
                    raise
                await self.wait_for_block(await self.block() + 1, timeout=30)
        raise AssertionError("unreachable")

    async def add_stake(self, amount_tao: float, hotkey: str | None = None) -> None:
        body = {"hotkey": hotkey or self.hotkey, "tao": float(amount_tao)}
        await self._request("POST", "/tx/add_stake", body, key=self._need_coldkey())

    async def transfer(self, dest: str, amount_tao: float) -> None:
        """Move free TAO from the coldkey to ``dest`` (fund fresh coldkeys from //Alice)."""
        body = {"dest": dest, "tao": float(amount_tao)}
        await self._request("POST", "/tx/transfer", body, key=self._need_coldkey())

    async def balance(self, coldkey: str | None = None) -> float:
        who = coldkey or self.coldkey
        if who is None:
            raise InvalidRequestError("no coldkey given")
        return float((await self._request("GET", f"/balances/{who}"))["tao"])

    async def create_subnet(self, netuid: int, owner_hotkey: str | None = None, **params) -> None:
        """Create subnet ``netuid`` owned by the coldkey (hyperparameters as keywords); its
        owner hotkey (default: the coldkey's address) takes uid 0."""
        body: dict = {"netuid": int(netuid), "params": params}
        if owner_hotkey:
            body["owner_hotkey"] = owner_hotkey
        await self._request("POST", "/tx/create_subnet", body, key=self._need_coldkey())

    async def trigger_epoch(self) -> int:
        """Owner: run an epoch at the next block (refused while commit-reveal is on)."""
        body = {"netuid": self.netuid}
        return int(
            (await self._request("POST", "/tx/trigger_epoch", body, self._need_coldkey()))["at"]
        )

    async def reveals(self) -> list[dict]:
        """Recent reveal outcomes of committed weights (newest first)."""
        return await self._request("GET", f"/subnets/{self.netuid}/reveals")

    async def sudo_set(self, **params) -> None:
        """Change this subnet's hyperparameters (signed by the owner coldkey, e.g. //Alice)."""
        body = {"netuid": self.netuid, "params": params}
        await self._request("POST", "/tx/sudo_set", body, key=self._need_coldkey())
