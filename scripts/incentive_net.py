"""An in-process subnet for the incentive benchmark: a chain whose blocks advance only when
the benchmark says so (no missed windows under CPU load), and an in-memory object store
behind the StorageClient calls the validator makes (head, get, get_bytes, put_bytes,
exists). A bucket can report a forged LastModified (the back-dating copier's endpoint).

Only the seams are fake: the validator, its directory, gather, checks, measurement, judge,
scores, weights and peer lists are the real code. Nothing here is part of a node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from template.chain.types import Metagraph, Neuron, SubnetParams, WeightsResult
from template.storage import BucketConfig, encode_commitment
from template.storage.client import FetchedObject, ObjectInfo
from template.storage.errors import ObjectNotFound, StorageError


@dataclass
class ChainState:
    netuid: int = 1
    block: int = 0
    stamps: dict[int, float] = field(default_factory=dict)
    hotkeys: list[str] = field(default_factory=list)
    stake: dict[str, float] = field(default_factory=dict)
    commitments: dict[str, bytes] = field(default_factory=dict)
    weights: dict[int, dict[int, float]] = field(default_factory=dict)

    def advance(self, to: int) -> None:
        """Produce blocks up to ``to`` now (timestamps: this process's clock)."""
        now = time.time()
        while self.block < to:
            self.block += 1
            self.stamps[self.block] = now


class FakeChain:
    """The Chain protocol over a shared ``ChainState`` for one hotkey."""

    def __init__(self, state: ChainState, hotkey: str):
        self.s, self._hotkey, self.netuid = state, hotkey, state.netuid

    @property
    def hotkey(self) -> str:
        return self._hotkey

    async def block(self) -> int:
        return self.s.block

    async def wait_for_block(self, n: int, timeout: float | None = None) -> int:
        if self.s.block < n:
            raise TimeoutError(f"block {n} not produced (benchmark chain is at {self.s.block})")
        return self.s.block

    async def block_timestamp(self, n: int) -> float:
        return self.s.stamps.get(n, self.s.stamps.get(self.s.block, time.time()))

    async def subnet_params(self) -> SubnetParams:
        return SubnetParams(self.netuid, 360, 0, min_allowed_weights=1, max_weight_limit=1.0)

    async def metagraph(self) -> Metagraph:
        neurons = tuple(
            Neuron(
                u,
                hk,
                "cold",
                self.s.stake.get(hk, 0.0),
                self.s.stake.get(hk, 0.0) > 0,
                0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            )
            for u, hk in enumerate(self.s.hotkeys)
        )
        return Metagraph(self.netuid, self.s.block, neurons)

    async def uid_of(self, hotkey: str) -> int | None:
        return self.s.hotkeys.index(hotkey) if hotkey in self.s.hotkeys else None

    async def commit(self, data: bytes) -> None:
        self.s.commitments[self._hotkey] = data

    async def commitments(self) -> dict[str, bytes]:
        return dict(self.s.commitments)

    async def set_weights(self, uids, weights, version_key: int) -> WeightsResult:
        me = self.s.hotkeys.index(self._hotkey)
        total = sum(weights) or 1.0
        self.s.weights[me] = {int(u): float(w) / total for u, w in zip(uids, weights, strict=True)}
        return WeightsResult(True, self.s.block, "")

    async def weights_of(self, uid: int) -> dict[int, float]:
        return dict(self.s.weights.get(uid, {}))

    async def register(self, hotkey: str | None = None) -> int:
        hk = hotkey or self._hotkey
        if hk not in self.s.hotkeys:
            self.s.hotkeys.append(hk)
        return self.s.hotkeys.index(hk)

    async def add_stake(self, amount_tao: float, hotkey: str | None = None) -> None:
        hk = hotkey or self._hotkey
        self.s.stake[hk] = self.s.stake.get(hk, 0.0) + amount_tao

    async def close(self) -> None:
        return None


@dataclass
class MemoryBucket:
    """One node's bucket: objects with their LastModified; ``backdate`` seconds are taken
    off every LastModified it reports (a forged endpoint clock)."""

    cfg: BucketConfig
    objects: dict[str, tuple[bytes, float]] = field(default_factory=dict)
    backdate: float = 0.0

    async def put_bytes(self, key: str, data: bytes, *_, **__) -> str:
        self.objects[key] = (bytes(data), time.time())
        return f"{hash(data) & 0xFFFFFFFF:08x}"

    def _info(self, key: str) -> ObjectInfo:
        if key not in self.objects:
            raise ObjectNotFound(f"{self.cfg.bucket}/{key} not found")
        data, t = self.objects[key]
        lm = datetime.fromtimestamp(t - self.backdate, tz=UTC)
        return ObjectInfo(key, len(data), lm, f"{hash(data) & 0xFFFFFFFFFFFF:012x}")

    async def head(self, key: str, deadline: float | None = None) -> ObjectInfo:
        return self._info(key)

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def get(self, key: str, max_bytes: int, *_, **__) -> FetchedObject:
        info = self._info(key)
        if info.size > max_bytes:
            raise StorageError(f"{key}: {info.size} bytes > cap {max_bytes}")
        return FetchedObject(self.objects[key][0], info)

    async def get_bytes(self, key: str, max_bytes: int, *_, **__) -> bytes:
        return (await self.get(key, max_bytes)).data

    async def create_bucket(self) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryStore:
    """Every node's bucket, by hotkey; ``commitment`` gives the bytes to publish on chain."""

    def __init__(self) -> None:
        self.buckets: dict[str, MemoryBucket] = {}

    def bucket(self, hotkey: str, name: str) -> MemoryBucket:
        cfg = BucketConfig("http://127.0.0.1:9", name, access_key_id="k", secret_access_key="s")
        self.buckets[hotkey] = MemoryBucket(cfg)
        return self.buckets[hotkey]

    def commitment(self, hotkey: str) -> bytes:
        return encode_commitment(self.buckets[hotkey].cfg)

    def client(self, hotkey: str) -> MemoryBucket | None:
        return self.buckets.get(hotkey)
