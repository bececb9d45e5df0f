"""``running_devchain``: an in-process dev chain on a free loopback port, for tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ...signing import dev_keypair
from .client import DevChainClient
from .params import Genesis
from .server import DevChainServer


@dataclass
class DevChainHandle:
    """What ``running_devchain`` yields: the URL, the genesis netuid and client helpers."""

    url: str
    netuid: int
    server: DevChainServer
    _clients: list[DevChainClient] = field(default_factory=list)
    _funder: DevChainClient | None = None

    async def client(self, hotkey, coldkey=None, netuid: int | None = None) -> DevChainClient:
        """A client on this chain (closed when the context exits)."""
        c = DevChainClient(self.url, self.netuid if netuid is None else netuid, hotkey, coldkey)
        self._clients.append(c)
        return c

    async def fund(self, coldkey_ss58: str, tao: float) -> None:
        """Transfer ``tao`` from //Alice to ``coldkey_ss58``."""
        if self._funder is None:
            alice = dev_keypair("//Alice")
            self._funder = await self.client(alice, alice)
        await self._funder.transfer(coldkey_ss58, tao)

    async def aclose_clients(self) -> None:
        for c in self._clients:
            await c.close()


@contextlib.asynccontextmanager
async def running_devchain(
    tmp_path: str | Path, block_time: float = 0.1, **genesis_overrides
) -> AsyncIterator[DevChainHandle]:
    """Run a dev chain in this event loop with its database in ``tmp_path``.

    ``genesis_overrides``: ``netuid``, ``dev_balance`` or any ``SubnetHyperparams`` field.
    """
    db = Path(tmp_path) / "devchain.sqlite"
    server = DevChainServer(db, Genesis.from_overrides(**genesis_overrides), block_time)
    port = await server.start("127.0.0.1", 0)
    handle = DevChainHandle(f"http://127.0.0.1:{port}", server.genesis_netuid, server)
    try:
        yield handle
    finally:
        await handle.aclose_clients()
        await server.stop()
