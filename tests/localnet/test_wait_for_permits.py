"""Local subnet set-up waits for the validators' permits before it starts the neurons."""

from __future__ import annotations

import asyncio

import pytest

from template.chain.devchain.client import DevChainClient
from template.chain.devchain.launch import start_devchain_process
from template.localnet.config import NETUID
from template.localnet.setup import NodeSpec, wait_for_permits
from template.signing import dev_keypair

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _staked_validator(url: str) -> int:
    alice = dev_keypair("//Alice")
    cold, hot = dev_keypair("//Alice//permit-test//cold"), dev_keypair("//Alice//permit-test//hot")
    async with DevChainClient(url, NETUID, alice, alice) as funder:
        await funder.transfer(cold.ss58_address, 100)
    async with DevChainClient(url, NETUID, hot, cold) as v:
        uid = await v.register()
        await v.add_stake(50)
    return uid


async def test_returns_once_the_staked_validator_holds_its_permit(tmp_path):
    proc = await asyncio.to_thread(
        start_devchain_process, tmp_path / "chain.sqlite", block_time=0.1, tempo=4
    )
    try:
        uid = await _staked_validator(proc.url)
        node = NodeSpec("validator-0", "validator", "validator-0", uid=uid)
        await wait_for_permits(proc.url, [node], block_time=0.1)
        async with DevChainClient(proc.url, NETUID, dev_keypair("//Alice")) as c:
            assert (await c.metagraph()).by_uid(uid).validator_permit
        # a validator that does not exist never gets one: a clear error, not a hang
        ghost = NodeSpec("validator-9", "validator", "validator-9", uid=uid + 50)
        with pytest.raises(RuntimeError, match="got no permit"):
            await wait_for_permits(proc.url, [ghost], block_time=0.1, tempos=1)
    finally:
        proc.stop()
