"""Chain flags and the connect_chain factory."""

from __future__ import annotations

import argparse

import pytest

from template.chain.config import (
    DEV_CHAIN_URL,
    ChainConfig,
    add_chain_args,
    connect_chain,
    resolve_chain_config,
)
from template.chain.errors import ConnectionLostError, InvalidRequestError
from template.chain.subtensor import SubtensorChain
from template.signing import dev_keypair


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_chain_args(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_finney_netuid_1():
    config = resolve_chain_config(parse())
    assert config == ChainConfig(
        "subtensor", "finney", "wss://entrypoint-finney.opentensor.ai:443", 1
    )


@pytest.mark.parametrize(
    "argv, kind, endpoint",
    [
        (["--subtensor.network", "test"], "subtensor", "wss://test.finney.opentensor.ai:443"),
        (["--subtensor.network", "local"], "subtensor", "ws://127.0.0.1:9944"),
        (["--subtensor.network", "dev"], "dev", DEV_CHAIN_URL),
        (["--subtensor.network", "ws://10.0.0.5:9944"], "subtensor", "ws://10.0.0.5:9944"),
        (["--subtensor.network", "http://127.0.0.1:7000"], "dev", "http://127.0.0.1:7000"),
        (["--subtensor.chain_endpoint", "wss://node.example:443"], "subtensor", None),
        (
            ["--subtensor.network", "dev", "--subtensor.chain_endpoint", "http://127.0.0.1:9"],
            "dev",
            "http://127.0.0.1:9",
        ),
        (
            ["--subtensor.network", "local", "--subtensor.chain_endpoint", "ws://1.2.3.4:9944"],
            "subtensor",
            "ws://1.2.3.4:9944",
        ),
    ],
)
def test_network_and_endpoint_resolution(argv, kind, endpoint):
    config = resolve_chain_config(parse("--netuid", "7", *argv))
    assert config.kind == kind and config.netuid == 7
    if endpoint is not None:
        assert config.endpoint == endpoint
    else:
        assert config.endpoint == argv[-1]  # the endpoint flag wins over the default network


def test_mapping_and_dotted_config_are_accepted():
    config = resolve_chain_config({"netuid": 3, "subtensor": {"network": "local"}})
    assert config.kind == "subtensor" and config.endpoint == "ws://127.0.0.1:9944"
    assert config.netuid == 3
    assert resolve_chain_config(config) is config


@pytest.mark.parametrize(
    "argv", [["--subtensor.network", "moon"], ["--subtensor.chain_endpoint", "ftp://x"]]
)
def test_bad_network_is_a_clear_error(argv):
    with pytest.raises(InvalidRequestError, match="ws"):
        resolve_chain_config(parse(*argv))


def test_negative_netuid_is_refused():
    with pytest.raises(InvalidRequestError, match="netuid"):
        resolve_chain_config({"netuid": -1})


def test_help_mentions_every_network():
    parser = argparse.ArgumentParser()
    add_chain_args(parser)
    text = parser.format_help()
    for word in ("finney", "test", "local", "dev", "chain_endpoint", "netuid"):
        assert word in text


async def test_connect_chain_builds_subtensor_chain(monkeypatch):
    async def fake_connect(self):
        return self

    monkeypatch.setattr(SubtensorChain, "connect", fake_connect)
    hot = dev_keypair("//Bob")
    chain = await connect_chain(parse("--subtensor.network", "local", "--netuid", "2"), hot)
    assert isinstance(chain, SubtensorChain)
    assert chain.netuid == 2 and chain.hotkey == hot.ss58_address
    assert chain.endpoint == "ws://127.0.0.1:9944"


async def test_connect_chain_builds_dev_chain_client(tmp_path):
    from template.chain.devchain.client import DevChainClient
    from template.chain.devchain.testing import running_devchain

    hot, cold = dev_keypair("//Bob"), dev_keypair("//Alice")
    async with running_devchain(tmp_path, block_time=0.1) as node:
        args = parse("--subtensor.network", "dev", "--subtensor.chain_endpoint", node.url)
        chain = await connect_chain(args, hot, cold)
        try:
            assert isinstance(chain, DevChainClient)
            assert chain.netuid == 1 and chain.hotkey == hot.ss58_address
            assert await chain.block() >= 0
        finally:
            await chain.close()


async def test_connect_chain_to_a_dead_dev_chain_is_connection_lost(unused_tcp_port, monkeypatch):
    from template.chain.devchain import client as client_mod

    monkeypatch.setattr(client_mod, "BACKOFF_S", 0.01)  # keep the test fast
    args = parse("--subtensor.chain_endpoint", f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(ConnectionLostError):
        await connect_chain(args, dev_keypair("//Bob"))
