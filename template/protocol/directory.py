"""Where everyone's bucket is: the metagraph plus parsed commitments, one client per bucket."""

from __future__ import annotations

import logging

from template.chain.protocol import Chain
from template.chain.types import Metagraph
from template.storage import (
    BucketConfig,
    StorageClient,
    StorageError,
    TransferConfig,
    parse_commitments,
)

from .leader import leader_candidates

logger = logging.getLogger(__name__)


async def read_or_none(
    client: StorageClient | None, key: str, max_bytes: int, deadline: float | None = None
) -> bytes | None:
    """A peer's object ``key`` (at most ``max_bytes``), or None when the peer has no bucket or
    the object is missing or unreadable (logged at debug: a peer's gap is never an error)."""
    if client is None:
        return None
    try:
        return await client.get_bytes(key, max_bytes, deadline=deadline)
    except StorageError as e:
        logger.debug("no %s: %s", key, e)
        return None


class PeerDirectory:
    """Refreshed from the chain (e.g. once a window); StorageClients are kept across refreshes."""

    def __init__(
        self, chain: Chain, *, allow_private: bool = False, transfer: TransferConfig | None = None
    ):
        self.chain = chain
        self.allow_private = allow_private
        self.transfer = transfer
        self.metagraph = Metagraph(netuid=chain.netuid, block=0)
        self.buckets: dict[str, BucketConfig] = {}
        self._clients: dict[str, tuple[BucketConfig, StorageClient]] = {}

    async def refresh(self) -> Metagraph:
        """Re-read the metagraph and commitments; garbage commitments are skipped (logged)."""
        self.metagraph = await self.chain.metagraph()
        registered = set(self.metagraph.hotkeys)
        raw = {
            hk: data for hk, data in (await self.chain.commitments()).items() if hk in registered
        }
        self.buckets = parse_commitments(raw, allow_private=self.allow_private)
        for hotkey in list(self._clients):
            cfg, client = self._clients[hotkey]
            if self.buckets.get(hotkey) != cfg:
                del self._clients[hotkey]
                await client.close()
        return self.metagraph

    def client(self, hotkey: str) -> StorageClient | None:
        """A read client for ``hotkey``'s bucket, or None when it has no valid commitment."""
        cfg = self.buckets.get(hotkey)
        if cfg is None:
            return None
        cached = self._clients.get(hotkey)
        if cached is None or cached[0] != cfg:
            cached = (cfg, StorageClient(cfg, self.transfer))
            self._clients[hotkey] = cached
        return cached[1]

    def uid_of(self, hotkey: str) -> int | None:
        n = self.metagraph.by_hotkey(hotkey)
        return None if n is None else n.uid

    def validators(self) -> list[str]:
        """Leader candidates: permitted validators with a bucket, by stake."""
        return leader_candidates(self.metagraph, self.buckets)

    def miners(self) -> list[tuple[int, str]]:
        """(uid, hotkey) of every neuron with a bucket that is not a leader candidate."""
        vals = set(self.validators())
        return sorted(
            (n.uid, n.hotkey)
            for n in self.metagraph.neurons
            if n.hotkey in self.buckets and n.hotkey not in vals
        )

    async def close(self) -> None:
        for _, client in self._clients.values():
            await client.close()
        self._clients.clear()
