"""Chain flags (bittensor style) and the factory that turns them into a ``Chain``.

``--subtensor.network`` picks a network by name (finney | test | local | dev) or takes a URL;
``--subtensor.chain_endpoint`` overrides it with an explicit URL. ``ws://``/``wss://`` URLs and
finney/test/local go to ``SubtensorChain`` (bittensor SDK); ``dev`` and ``http(s)://`` URLs go
to this project's embedded dev chain (``DevChainClient``).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidRequestError
from .protocol import Chain

SUBTENSOR_NETWORKS = {
    "finney": "wss://entrypoint-finney.opentensor.ai:443",
    "test": "wss://test.finney.opentensor.ai:443",
    "local": "ws://127.0.0.1:9944",
}
DEV_CHAIN_URL = "http://127.0.0.1:9946"
DEFAULT_NETWORK = "finney"

ChainKind = Literal["subtensor", "dev"]


@dataclass(frozen=True)
class ChainConfig:
    """Resolved chain settings: which adapter, which endpoint, which subnet."""

    kind: ChainKind
    network: str  # finney | test | local | dev, or the URL itself when given one
    endpoint: str  # ws(s):// for subtensor, http(s):// for the dev chain
    netuid: int


def add_chain_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--netuid``, ``--subtensor.network`` and ``--subtensor.chain_endpoint`` to ``parser``.

    Parsed values land in ``args.netuid``, ``args.subtensor_network`` and
    ``args.subtensor_chain_endpoint``.
    """
    group = parser.add_argument_group("chain")
    group.add_argument("--netuid", type=int, default=1, help="Subnet uid to work on (default 1).")
    group.add_argument(
        "--subtensor.network",
        dest="subtensor_network",
        default=DEFAULT_NETWORK,
        help=(
            "finney (main net), test (test net), local (docker localnet at ws://127.0.0.1:9944), "
            f"dev (this project's embedded dev chain at {DEV_CHAIN_URL}), or a ws(s):// / "
            "http(s):// URL. Default: finney."
        ),
    )
    group.add_argument(
        "--subtensor.chain_endpoint",
        "--subtensor.chain-endpoint",  # this project's dotted style; bittensor spells it with _
        dest="subtensor_chain_endpoint",
        default=None,
        help=(
            "Explicit endpoint URL; wins over --subtensor.network. ws:// or wss:// for a subtensor "
            "node, http:// or https:// for the embedded dev chain."
        ),
    )


def _get(source: Any, *names: str) -> Any:
    """First value found under any of ``names`` in a namespace, a mapping or a dotted config."""
    for name in names:
        if isinstance(source, Mapping):
            if name in source:
                return source[name]
            head, _, tail = name.partition(".")
            if tail and isinstance(source.get(head), Mapping) and tail in source[head]:
                return source[head][tail]
            continue
        value = getattr(source, name, None)
        if value is not None:
            return value
        head, _, tail = name.partition(".")
        if tail and getattr(source, head, None) is not None:
            value = getattr(getattr(source, head), tail, None)
            if value is not None:
                return value
    return None


def _resolve_url(url: str, netuid: int, network: str | None = None) -> ChainConfig:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("ws", "wss"):
        return ChainConfig("subtensor", network or url, url, netuid)
    if scheme in ("http", "https"):
        return ChainConfig("dev", network or url, url, netuid)
    raise InvalidRequestError(
        f"unsupported chain endpoint {url!r}: use ws(s):// for subtensor or http(s):// for the "
        "dev chain"
    )


def resolve_chain_config(args_or_config: Any) -> ChainConfig:
    """Resolve parsed args (or a mapping, or a ``ChainConfig``) into a ``ChainConfig``."""
    if isinstance(args_or_config, ChainConfig):
        return args_or_config
    netuid = _get(args_or_config, "netuid")
    netuid = 1 if netuid is None else netuid
    if not isinstance(netuid, int) or isinstance(netuid, bool) or netuid < 0:
        raise InvalidRequestError(f"--netuid must be a non-negative integer, got {netuid!r}")
    network = _get(args_or_config, "subtensor_network", "subtensor.network", "network")
    endpoint = _get(
        args_or_config, "subtensor_chain_endpoint", "subtensor.chain_endpoint", "chain_endpoint"
    )
    network = str(network or DEFAULT_NETWORK).strip()
    if endpoint:
        label = network if network in SUBTENSOR_NETWORKS or network == "dev" else None
        return _resolve_url(str(endpoint).strip(), netuid, label)
    if network in SUBTENSOR_NETWORKS:
        return ChainConfig("subtensor", network, SUBTENSOR_NETWORKS[network], netuid)
    if network == "dev":
        return ChainConfig("dev", "dev", DEV_CHAIN_URL, netuid)
    if "://" in network:
        return _resolve_url(network, netuid)
    known = ", ".join([*SUBTENSOR_NETWORKS, "dev"])
    raise InvalidRequestError(
        f"unknown --subtensor.network {network!r}; use one of {known} or a ws(s)/http(s) URL"
    )


async def connect_chain(args_or_config: Any, hotkey: Any, coldkey: Any | None = None) -> Chain:
    """Build and connect the Chain the flags ask for (subtensor or the embedded dev chain).

    ``hotkey`` / ``coldkey`` are ``bittensor.sp_core.Keypair``s (e.g. ``wallet.hotkey``).
    """
    config = resolve_chain_config(args_or_config)
    if config.kind == "dev":
        from template.chain.devchain.client import DevChainClient

        client = DevChainClient(config.endpoint, config.netuid, hotkey, coldkey)
        connect = getattr(client, "connect", None)
        if connect is not None:
            try:
                opened = connect()
                if inspect.isawaitable(opened):
                    await opened
            except BaseException:
                await client.close()
                raise
        return client
    from template.chain.subtensor import SubtensorChain

    chain = SubtensorChain(config.endpoint, config.netuid, hotkey, coldkey)
    return await chain.connect()
