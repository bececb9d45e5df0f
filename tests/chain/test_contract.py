"""One behavioural contract, run against both Chain adapters.

- ``subtensor``: the real ``SubtensorChain`` -> bittensor SDK (reads, SetWeights intent, raw
  calls) -> ``FakeSubstrate`` at the SDK's own ``Substrate`` seam.
- ``devchain``: ``DevChainClient`` -> this project's embedded dev chain over loopback HTTP.

What works on one must work on the other, so neurons never care which chain they hold.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time

import bittensor as bt
import pytest

from template.chain import (
    MAX_COMMITMENT_BYTES,
    AlreadyRegisteredError,
    Chain,
    CommitmentTooLargeError,
    Metagraph,
    Neuron,
    NotRegisteredError,
    SubnetParams,
    WeightsResult,
)
from template.chain.errors import SubnetNotFoundError
from template.chain.subtensor import SubtensorChain
from template.signing import dev_keypair
from tests.chain.fake_substrate import FakeSubstrate, timelock_oracle

pytestmark = pytest.mark.timeout(60)

_keys = itertools.count()


def new_key(tag: str):
    return dev_keypair(f"//contract-{tag}-{next(_keys)}")


class SubtensorEnv:
    """Fake-substrate side: every client is a SubtensorChain on one in-memory chain."""

    def __init__(self):
        self.fake = FakeSubstrate(netuid=1, block_time=0.05)
        self.netuid = 1
        self._chains: list[SubtensorChain] = []

    async def client(self, hotkey, coldkey=None, netuid: int | None = None) -> Chain:
        client = bt.Client("local", substrate=self.fake)
        netuid = self.netuid if netuid is None else netuid
        chain = SubtensorChain("local", netuid, hotkey, coldkey, client=client)
        self._chains.append(chain)
        return await chain.connect()

    async def fund(self, coldkey_ss58: str, tao: float) -> None:
        self.fake.fund(coldkey_ss58, tao)

    async def aclose(self) -> None:
        for chain in self._chains:
            await chain.close()


class DevChainEnv:
    def __init__(self, handle):
        self.handle = handle
        self.netuid = handle.netuid

    async def client(self, hotkey, coldkey=None, netuid: int | None = None) -> Chain:
        return await self.handle.client(hotkey, coldkey, netuid=netuid)

    async def fund(self, coldkey_ss58: str, tao: float) -> None:
        await self.handle.fund(coldkey_ss58, tao)

    async def aclose(self) -> None:
        return None


def _devchain_testing():
    try:
        from template.chain.devchain.testing import running_devchain
    except Exception as error:  # noqa: BLE001 - reported as the skip reason
        return None, f"dev chain test harness unavailable: {error}"
    return running_devchain, ""


@pytest.fixture(params=["subtensor", "devchain"])
async def env(request, tmp_path):
    if request.param == "subtensor":
        e = SubtensorEnv()
        try:
            with timelock_oracle():  # the fake plays drand for commit-reveal
                yield e
        finally:
            await e.aclose()
        return
    running_devchain, reason = _devchain_testing()
    if running_devchain is None:
        pytest.skip(reason)
    async with running_devchain(tmp_path, block_time=0.1) as handle:
        yield DevChainEnv(handle)


async def registered(env, stake: float = 0.0):
    """A funded coldkey, a registered hotkey and a client for it: (client, uid, hotkey, coldkey)."""
    hot, cold = new_key("hot"), new_key("cold")
    await env.fund(cold.ss58_address, 100.0)
    chain = await env.client(hot, cold)
    uid = await chain.register()
    if stake:
        await chain.add_stake(stake)
    return chain, uid, hot, cold


async def next_block(chain: Chain, blocks: int = 1) -> int:
    return await chain.wait_for_block(await chain.block() + blocks, timeout=10)


async def test_client_satisfies_protocol(env):
    chain = await env.client(new_key("hot"))
    assert isinstance(chain, Chain)
    assert chain.netuid == env.netuid
    assert isinstance(chain.hotkey, str) and chain.hotkey.startswith("5")


async def test_blocks_advance_and_wait_returns(env):
    chain = await env.client(new_key("hot"))
    start = await chain.block()
    reached = await chain.wait_for_block(start + 2, timeout=10)
    assert reached >= start + 2
    assert await chain.block() >= reached
    # waiting for a block that already exists returns at once
    assert await chain.wait_for_block(start, timeout=1) >= start + 2


async def test_wait_for_block_times_out(env):
    chain = await env.client(new_key("hot"))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await chain.wait_for_block(await chain.block() + 100_000, timeout=0.3)
    assert time.monotonic() - t0 < 5


async def test_timestamps_are_monotonic_and_recent(env):
    chain = await env.client(new_key("hot"))
    start = await chain.block()
    await chain.wait_for_block(start + 2, timeout=10)
    stamps = [await chain.block_timestamp(n) for n in (start, start + 1, start + 2)]
    assert stamps == sorted(stamps)
    assert stamps[2] > stamps[0]
    assert abs(stamps[2] - time.time()) < 120


async def test_subnet_params_are_sane(env):
    chain = await env.client(new_key("hot"))
    params = await chain.subnet_params()
    assert isinstance(params, SubnetParams)
    assert params.netuid == env.netuid
    assert params.tempo >= 1
    assert params.weights_rate_limit >= 0
    assert params.min_allowed_weights >= 0
    assert 0.0 < params.max_weight_limit <= 1.0
    assert 0 < params.max_commitment_bytes <= MAX_COMMITMENT_BYTES


async def test_register_then_uid_of(env):
    chain, uid, hot, cold = await registered(env)
    assert isinstance(uid, int) and uid >= 0
    assert await chain.uid_of(hot.ss58_address) == uid
    assert await chain.uid_of(new_key("nobody").ss58_address) is None
    neuron = (await chain.metagraph()).by_hotkey(hot.ss58_address)
    assert neuron is not None and neuron.uid == uid
    assert neuron.coldkey == cold.ss58_address


async def test_register_twice_raises_already_registered(env):
    chain, _uid, _hot, _cold = await registered(env)
    with pytest.raises(AlreadyRegisteredError):
        await chain.register()


async def test_commitment_round_trip_of_binary_bytes(env):
    chain, _uid, hot, _cold = await registered(env)
    # a non-UTF-8 lead byte, NUL bytes and every byte value class
    first = b"\x80" + bytes(range(0, 256, 3))[:80] + b"\x00\xff"
    await chain.commit(first)
    assert (await chain.commitments())[hot.ss58_address] == first
    await next_block(chain, 2)  # commitments are rate limited per block on the dev chain
    second = (b"\xfe0x" + b"deadbeef" * 16)[:MAX_COMMITMENT_BYTES]  # looks like hex text
    assert len(second) == MAX_COMMITMENT_BYTES
    await chain.commit(second)
    assert (await chain.commitments())[hot.ss58_address] == second


async def test_commitment_over_the_limit_is_refused(env):
    chain, _uid, hot, _cold = await registered(env)
    with pytest.raises(CommitmentTooLargeError):
        await chain.commit(b"\x80" * (MAX_COMMITMENT_BYTES + 1))
    assert hot.ss58_address not in await chain.commitments()


async def test_commit_from_unregistered_hotkey_raises_not_registered(env):
    chain = await env.client(new_key("hot"))
    with pytest.raises(NotRegisteredError):
        await chain.commit(b"\x80hello")


async def test_set_weights_is_visible_in_last_update(env):
    chain, uid, hot, _cold = await registered(env, stake=10.0)
    before = await chain.block()
    result = await chain.set_weights([uid], [1.0], version_key=0)  # self-weight needs no permit
    assert isinstance(result, WeightsResult) and result.success
    assert result.block is None or result.block >= before
    neuron = (await chain.metagraph()).by_hotkey(hot.ss58_address)
    assert neuron is not None and neuron.last_update >= before


async def test_set_weights_from_unregistered_hotkey_raises_not_registered(env):
    chain = await env.client(new_key("hot"))
    with pytest.raises(NotRegisteredError):
        await chain.set_weights([0], [1.0], version_key=0)


async def test_metagraph_fields_are_typed(env):
    chain, uid, hot, _cold = await registered(env, stake=5.0)
    graph = await chain.metagraph()
    assert isinstance(graph, Metagraph)
    assert graph.netuid == env.netuid and graph.block >= 0
    assert len(graph) >= 1 and hot.ss58_address in graph.hotkeys
    for n in graph.neurons:
        assert isinstance(n, Neuron)
        assert isinstance(n.uid, int) and isinstance(n.hotkey, str) and isinstance(n.coldkey, str)
        assert isinstance(n.validator_permit, bool)
        assert isinstance(n.last_update, int) and isinstance(n.registered_at, int)
        for value in (n.incentive, n.dividends, n.consensus, n.trust):
            assert isinstance(value, float) and 0.0 <= value <= 1.0
        for value in (n.stake, n.emission):
            assert isinstance(value, float) and math.isfinite(value) and value >= 0.0
    mine = graph.by_uid(uid)
    assert mine is not None and mine.hotkey == hot.ss58_address
    assert mine.stake > 0.0


async def test_closed_client_can_be_closed_again(env):
    chain = await env.client(new_key("hot"))
    await chain.block()
    await chain.close()
    with contextlib.suppress(Exception):
        await chain.close()


async def next_epoch(chain: Chain) -> int:
    """Wait until the subnet has run an epoch after now; returns its block."""
    start = (await chain.subnet_params()).last_epoch_block
    for _ in range(200):
        params = await chain.subnet_params()
        if params.last_epoch_block > start:
            return params.last_epoch_block
        await chain.wait_for_block(await chain.block() + 1, timeout=10)
    raise AssertionError("no epoch ran")


async def test_a_wrong_netuid_is_named(env):
    chain = await env.client(new_key("hot"), netuid=77)
    with pytest.raises(SubnetNotFoundError, match="77"):
        await chain.subnet_params()


async def _revealed(chain: Chain, uid: int, epochs: int) -> dict[int, float]:
    for _ in range(epochs + 1):
        await next_epoch(chain)
        row = await chain.weights_of(uid)
        if row:
            return row
    return {}


async def test_permits_come_at_an_epoch_and_weights_stay_hidden_until_revealed(env):
    validator, v_uid, _hot, _cold = await registered(env, stake=20.0)
    _miner, m_uid, _, _ = await registered(env)
    params = await validator.subnet_params()
    assert params.commit_reveal and params.reveal_period_epochs >= 1  # the chain's default
    if not (await validator.metagraph()).by_uid(v_uid).validator_permit:
        # without a permit the commit is accepted, and silently dropped at its reveal
        assert (await validator.set_weights([m_uid], [1.0], version_key=0)).success
        assert await _revealed(validator, v_uid, params.reveal_period_epochs) == {}
    await next_epoch(validator)
    assert (await validator.metagraph()).by_uid(v_uid).validator_permit
    assert (await validator.set_weights([m_uid], [1.0], version_key=0)).success
    assert await validator.weights_of(v_uid) == {}  # committed, not readable by anyone
    row = await _revealed(validator, v_uid, params.reveal_period_epochs)
    assert row == {m_uid: pytest.approx(1.0)}
