"""The localnet set-up path (subnet creation, sudo, funding) through the SDK, on FakeSubstrate."""

from __future__ import annotations

import bittensor as bt
import pytest

from template.chain import ChainError
from template.chain.subtensor import SubtensorChain
from template.chain.subtensor_localnet import (
    LocalnetSubnetConfig,
    fund,
    prepare_subnet,
    sudo,
)
from template.signing import dev_keypair
from tests.chain.fake_substrate import FakeSubstrate

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def empty_chain():
    alice = dev_keypair("//Alice")
    fake = FakeSubstrate(netuid=2, subnet_exists=False, weights_rate_limit=50)
    fake.fund(alice.ss58_address, 1_000_000)
    client = bt.Client("local", substrate=fake)
    await client.connect()
    try:
        yield fake, client, alice
    finally:
        await client.close()


async def test_prepare_subnet_creates_starts_and_configures(empty_chain):
    fake, client, alice = empty_chain
    owner_hot = dev_keypair("//localnet-owner-hot")
    config = LocalnetSubnetConfig(tempo=7, weights_rate_limit=0, commit_reveal=False)
    netuid = await prepare_subnet(client, alice, owner_hot.ss58_address, config)
    assert netuid == 2
    assert fake.subnet_exists and fake.subnet_started and fake.subnet_owner == alice.ss58_address
    assert (fake.tempo, fake.weights_rate_limit, fake.commit_reveal) == (7, 0, False)
    assert fake.start_call_delay == 0

    # the subnet is usable by the adapter straight away
    hot, cold = dev_keypair("//localnet-v-hot"), dev_keypair("//localnet-v-cold")
    await fund(client, alice, cold.ss58_address, 50.0)
    assert fake.balances[cold.ss58_address] == 50 * 10**9
    chain = await SubtensorChain("local", netuid, hot, cold, client=client).connect()
    uid = await chain.register()
    await chain.add_stake(10.0)
    assert (await chain.subnet_params()).tempo == 7
    assert (await chain.metagraph()).by_uid(uid).hotkey == hot.ss58_address
    assert (await chain.metagraph()).by_uid(0).hotkey == owner_hot.ss58_address


async def test_sudo_from_a_non_sudo_key_fails(empty_chain):
    fake, client, _alice = empty_chain
    call = bt.calls.AdminUtils.sudo_set_start_call_delay(delay=0)
    with pytest.raises(ChainError, match="RequireSudo|sudo"):
        await sudo(client, dev_keypair("//Mallory"), call, "start_call_delay")
    assert fake.start_call_delay == 10
