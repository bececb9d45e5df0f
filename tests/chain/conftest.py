"""Shared helpers of the dev chain tests: fresh keys and a registered, staked validator set-up."""

from __future__ import annotations

import itertools

import pytest

from template.signing import dev_keypair

_counter = itertools.count()


def fresh_key(tag: str = "k"):
    """A new deterministic keypair nobody else in the test run uses."""
    return dev_keypair(f"//Alice//devchain-test//{tag}//{next(_counter)}")


@pytest.fixture
def alice():
    return dev_keypair("//Alice")


async def make_neuron(chain, *, stake: float = 0.0, fund: float = 100.0):
    """A funded coldkey + hotkey registered on ``chain``'s genesis subnet; returns (client, uid)."""
    coldkey, hotkey = fresh_key("cold"), fresh_key("hot")
    await chain.fund(coldkey.ss58_address, fund + stake)
    client = await chain.client(hotkey, coldkey)
    uid = await client.register()
    if stake > 0:
        await client.add_stake(stake)
    return client, uid


async def wait_epoch(client) -> int:
    """Wait until the subnet has run an epoch after now; returns that epoch's block."""
    info = await client.subnet_info()
    start = info["last_epoch"]
    tempo = info["params"]["tempo"]
    now = await client.block()
    await client.wait_for_block(now + tempo + 2, timeout=30)
    info = await client.subnet_info()
    assert info["last_epoch"] > start
    return info["last_epoch"]
