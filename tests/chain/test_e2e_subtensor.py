"""SubtensorChain against a REAL subtensor node (the docker localnet).

Runs only when ``SUBTENSOR_E2E_ENDPOINT`` is set, e.g.::

    scripts/subtensor_localnet.sh start          # docker localnet on ws://127.0.0.1:9944
    SUBTENSOR_E2E_ENDPOINT=ws://127.0.0.1:9944 .venv/bin/pytest -m e2e_subtensor -ra

//Alice is the localnet's sudo key: she creates a fresh subnet (so reruns do not collide),
relaxes commit-reveal and the weights rate limit, and funds fresh validator and miner keys.
"""

from __future__ import annotations

import asyncio
import os
import time

import bittensor as bt
import pytest

from template.chain import (
    MAX_COMMITMENT_BYTES,
    AlreadyRegisteredError,
    CommitmentTooLargeError,
    NotRegisteredError,
)
from template.chain.subtensor import SubtensorChain
from template.chain.subtensor_localnet import LocalnetSubnetConfig, fund, prepare_subnet
from template.signing import dev_keypair

ENDPOINT = os.environ.get("SUBTENSOR_E2E_ENDPOINT", "")

pytestmark = [
    pytest.mark.e2e_subtensor,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not ENDPOINT, reason="set SUBTENSOR_E2E_ENDPOINT=ws://... to run"),
]

TEMPO = 10


@pytest.fixture
async def localnet():
    """A fresh, started subnet on the node and a ready SDK client: (client, netuid, run tag)."""
    tag = str(time.time_ns())
    alice = dev_keypair("//Alice")
    client = bt.Client(ENDPOINT, fallback_endpoints=[], archive_endpoints=[])
    await client.connect()
    try:
        owner_hot = dev_keypair(f"//e2e-owner-hot-{tag}")
        netuid = await prepare_subnet(
            client, alice, owner_hot.ss58_address, LocalnetSubnetConfig(tempo=TEMPO)
        )
        yield client, netuid, tag
    finally:
        await client.close()


async def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(1.0)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_subnet_lifecycle_on_a_real_node(localnet):
    client, netuid, tag = localnet
    alice = dev_keypair("//Alice")
    v_hot, v_cold = dev_keypair(f"//e2e-v-hot-{tag}"), dev_keypair(f"//e2e-v-cold-{tag}")
    m_hot, m_cold = dev_keypair(f"//e2e-m-hot-{tag}"), dev_keypair(f"//e2e-m-cold-{tag}")
    await fund(client, alice, v_cold.ss58_address, 1000.0)
    await fund(client, alice, m_cold.ss58_address, 100.0)

    validator = await SubtensorChain(ENDPOINT, netuid, v_hot, v_cold).connect()
    miner = await SubtensorChain(ENDPOINT, netuid, m_hot, m_cold).connect()
    try:
        # blocks and time
        start = await validator.block()
        assert await validator.wait_for_block(start + 2, timeout=60) >= start + 2
        assert await validator.block_timestamp(start + 1) >= await validator.block_timestamp(start)

        params = await validator.subnet_params()
        assert params.netuid == netuid and params.tempo == TEMPO
        assert params.weights_rate_limit == 0 and 0 < params.max_weight_limit <= 1

        # registration and stake
        v_uid = await validator.register()
        m_uid = await miner.register()
        assert await miner.uid_of(v_hot.ss58_address) == v_uid
        with pytest.raises(AlreadyRegisteredError):
            await validator.register()
        await validator.add_stake(100.0)

        # commitments (binary bytes, with a non-utf-8 lead byte)
        data = b"\x80" + os.urandom(100)
        await miner.commit(data)
        assert (await validator.commitments())[m_hot.ss58_address] == data
        with pytest.raises(CommitmentTooLargeError):
            await miner.commit(b"\x80" * (MAX_COMMITMENT_BYTES + 1))

        # validator permits are recomputed at epochs
        async def has_permit():
            n = (await validator.metagraph()).by_uid(v_uid)
            return n is not None and n.validator_permit

        await wait_until(has_permit, timeout=300, what="a validator permit")

        result = await validator.set_weights([m_uid, v_uid], [0.7, 0.3], version_key=0)
        assert result.success
        graph = await validator.metagraph()
        me = graph.by_uid(v_uid)
        assert me is not None and me.hotkey == v_hot.ss58_address
        assert result.block is None or me.last_update >= result.block
        assert me.stake > 0.0
        assert graph.by_uid(m_uid).coldkey == m_cold.ss58_address

        stranger = SubtensorChain(ENDPOINT, netuid, dev_keypair(f"//e2e-x-{tag}"))
        try:
            with pytest.raises(NotRegisteredError):
                await stranger.set_weights([m_uid], [1.0], version_key=0)
        finally:
            await stranger.close()
    finally:
        await validator.close()
        await miner.close()
