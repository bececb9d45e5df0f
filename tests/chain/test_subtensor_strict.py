"""The adapter against a fake Substrate as strict as subtensor: weight counts as the SDK checks
them, commit-reveal end to end, stake threshold, pruned state, registration limits and
shielding, permits at epochs, a wrong netuid."""

from __future__ import annotations

import time

import bittensor as bt
import pytest

from template.chain import InvalidWeightsError, SubnetParams
from template.chain.errors import (
    NoValidatorPermitError,
    StakeTooLowError,
    SubnetNotFoundError,
    TooManyRegistrationsError,
)
from template.chain.subtensor import SubtensorChain
from template.chain.subtensor_errors import to_chain_error
from template.chain.subtensor_retry import RetryPolicy
from template.signing import dev_keypair
from template.validator.weights import compute_weights, pending_check, verify_weights
from tests.chain.fake_substrate import FakeSubstrate, timelock_oracle

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
COLD = dev_keypair("//strict-cold")


def chain_for(fake: FakeSubstrate, tag: str, netuid: int = 1) -> SubtensorChain:
    client = bt.Client("local", substrate=fake)
    hot = dev_keypair(f"//strict-{tag}")
    return SubtensorChain("local", netuid, hot, COLD, client=client, retry=FAST_RETRY)


async def next_epoch(fake: FakeSubstrate, chain: SubtensorChain) -> None:
    start = fake.epoch_index
    await chain.wait_for_block(fake.last_epoch_block + fake.tempo, timeout=10)
    assert fake.epoch_index > start


async def subnet(fake: FakeSubstrate, miners: int, stake: float = 10.0):
    """A staked validator (permit granted at an epoch) and ``miners`` registered miners."""
    fake.fund(COLD.ss58_address, 10_000)
    v = await chain_for(fake, f"v{id(fake)}").connect()
    v_uid = await v.register()
    await v.add_stake(stake)
    uids = [
        await (await chain_for(fake, f"m{i}{id(fake)}").connect()).register() for i in range(miners)
    ]
    await next_epoch(fake, v)
    return v, v_uid, uids


async def test_weights_meet_min_allowed_weights_the_way_the_sdk_counts_them():
    fake = FakeSubstrate(block_time=0.02, commit_reveal=False, min_allowed_weights=4)
    v, v_uid, miners = await subnet(fake, miners=5)
    params = await v.subnet_params()
    # only one miner earned anything: zero padding would be dropped by the SDK, then refused
    with pytest.raises(InvalidWeightsError, match="at least 4"):
        await v.set_weights(miners[:4], [1.0, 0.0, 0.0, 0.0], version_key=0)
    weights = compute_weights({miners[0]: 0.7}, [v_uid, *miners], params, exclude={v_uid})
    assert len(weights) == 4 and all(w > 0 for w in weights.values())
    result = await v.set_weights(sorted(weights), [weights[u] for u in sorted(weights)], 0)
    assert result.success
    on_chain = dict(fake.neurons[v_uid].weights)
    assert len(on_chain) == 4 and all(w > 0 for w in on_chain.values())
    assert max(on_chain, key=on_chain.get) == miners[0]


async def test_permits_are_granted_at_an_epoch_not_at_staking():
    fake = FakeSubstrate(block_time=0.02, commit_reveal=False, tempo=20)
    fake.fund(COLD.ss58_address, 1000)
    v = await chain_for(fake, "permit-v").connect()
    m_uid = await chain_for(fake, "permit-m").register()
    v_uid = await v.register()
    await v.add_stake(10.0)
    assert not (await v.metagraph()).by_uid(v_uid).validator_permit
    with pytest.raises(NoValidatorPermitError):
        await v.set_weights([m_uid], [1.0], 0)
    await next_epoch(fake, v)
    assert (await v.metagraph()).by_uid(v_uid).validator_permit
    assert (await v.set_weights([m_uid], [1.0], 0)).success


async def test_stake_threshold_is_its_own_error():
    fake = FakeSubstrate(block_time=0.02, commit_reveal=False, stake_threshold_rao=50 * 10**9)
    v, v_uid, miners = await subnet(fake, miners=1, stake=10.0)
    # 10 TAO is 5 alpha: under the threshold, so not even a permit
    assert (await v.subnet_params()).stake_threshold == pytest.approx(50.0)
    fake.neurons[v_uid].validator_permit = True  # the pool rejects it on stake alone
    with pytest.raises(StakeTooLowError, match="StakeAmountTooLow") as info:
        await v.set_weights(miners, [1.0], 0)
    assert "stake" in info.value.hint and "permit" not in type(info.value).__name__.lower()
    assert isinstance(
        to_chain_error(bt.ChainError("x", "StakeAmountTooLow"), "a"), StakeTooLowError
    )


async def test_subnet_params_read_commit_reveal_and_thresholds():
    fake = FakeSubstrate(block_time=0.02, reveal_period_epochs=3, stake_threshold_rao=10**9)
    fake.weights_version_key = 7
    fake.weights_rate_limit = None  # storage unset: the chain's default applies
    chain = await chain_for(fake, "params").connect()
    p = await chain.subnet_params()
    assert isinstance(p, SubnetParams)
    assert p.commit_reveal and p.reveal_period_epochs == 3 and p.weights_version == 7
    assert p.stake_threshold == pytest.approx(1.0) and p.weights_rate_limit == 100
    assert p.last_epoch_block == fake.last_epoch_block
    assert p.reveal_delay_blocks() >= 3 * fake.tempo
    assert p.owner_uid is None  # the owner hotkey holds no uid yet
    fake.fund(COLD.ss58_address, 100)
    fake.subnet_owner_hotkey = chain.hotkey
    uid = await chain.register()
    assert (await chain.subnet_params()).owner_uid == uid


async def test_commit_reveal_weights_land_after_the_reveal_and_are_verified():
    fake = FakeSubstrate(block_time=0.02, tempo=10, commit_reveal=True)
    with timelock_oracle():
        v, v_uid, miners = await subnet(fake, miners=2)
        params = await v.subnet_params()
        sent = {miners[0]: 0.25, miners[1]: 0.75}
        result = await v.set_weights(sorted(sent), [sent[u] for u in sorted(sent)], 0)
    assert result.success and "commit-reveal" in result.message
    assert ("SubtensorModule", "commit_timelocked_mechanism_weights") in {
        (m, f) for m, f, _ in fake.submitted
    }
    assert await v.weights_of(v_uid) == {}  # hidden until revealed
    pending = pending_check(sent, result.block, params)
    await v.wait_for_block(pending.check_at, timeout=20)
    check = await verify_weights(v, v_uid, pending)
    assert check.landed, check.message
    assert (await v.weights_of(v_uid))[miners[1]] == pytest.approx(0.75, abs=1e-3)


async def test_a_reveal_that_fails_its_checks_is_silent_but_detected():
    fake = FakeSubstrate(block_time=0.02, tempo=10, commit_reveal=True)
    fake.weights_version_key = 5
    with timelock_oracle():
        v, v_uid, miners = await subnet(fake, miners=1)
        params = await v.subnet_params()
        result = await v.set_weights(miners, [1.0], version_key=4)  # too old: fails at reveal
    assert result.success  # the commit itself is accepted, as on the chain
    pending = pending_check({miners[0]: 1.0}, result.block, params)
    await v.wait_for_block(pending.check_at, timeout=20)
    check = await verify_weights(v, v_uid, pending)
    assert not check.landed and "not in force" in check.message
    assert (v.hotkey, False, "IncorrectWeightVersionKey") in fake.reveals


async def test_old_block_timestamp_survives_a_pruning_node():
    fake = FakeSubstrate(block_time=0.02, state_pruning=5)
    chain = await chain_for(fake, "pruned").connect()
    now = await chain.block()
    old = now - 50
    stamp = await chain.block_timestamp(old)
    assert stamp == pytest.approx(fake.timestamp_ms(old) / 1000.0, abs=0.5)
    assert stamp < time.time()


async def test_registration_waits_out_the_per_block_limit():
    fake = FakeSubstrate(block_time=0.05, max_registrations_per_block=1)
    fake.fund(COLD.ss58_address, 100)
    a, b = chain_for(fake, "reg-a"), chain_for(fake, "reg-b")
    ua, ub = await a.register(), await b.register()
    assert {ua, ub} == {0, 1}
    assert fake.neurons[0].registered_at != fake.neurons[1].registered_at
    error = to_chain_error(bt.ChainError("x", "TooManyRegistrationsThisBlock"), "register")
    assert isinstance(error, TooManyRegistrationsError) and "retry" in error.hint


async def test_registration_is_mev_shielded_where_the_chain_has_the_pallet():
    fake = FakeSubstrate(block_time=0.02, mev_shield=True)
    fake.fund(COLD.ss58_address, 100)
    chain = chain_for(fake, "shielded")
    uid = await chain.register()
    assert fake.neurons[uid].hotkey == chain.hotkey
    calls = [(m, f) for m, f, who in fake.submitted if who == COLD.ss58_address]
    assert calls == [("MevShield", "submit_encrypted"), ("SubtensorModule", "burned_register")]
    plain = FakeSubstrate(block_time=0.02)  # no MevShield key: the plain call
    plain.fund(COLD.ss58_address, 100)
    await chain_for(plain, "plain").register()
    assert [(m, f) for m, f, _ in plain.submitted] == [("SubtensorModule", "burned_register")]


async def test_full_subnet_prunes_the_lowest_non_immune_uid():
    fake = FakeSubstrate(block_time=0.02, max_uids=2, immunity_period=0)
    fake.fund(COLD.ss58_address, 100)
    first, second = chain_for(fake, "full-1"), chain_for(fake, "full-2")
    await first.register()
    await second.register()
    fake.neurons[0].emission_rao = 5
    newcomer = chain_for(fake, "full-3")
    assert await newcomer.register() == 1  # uid 1 earned least
    assert await second.uid_of(second.hotkey) is None


async def test_a_wrong_netuid_gets_its_own_message():
    fake = FakeSubstrate(block_time=0.02)
    chain = await chain_for(fake, "wrong", netuid=9).connect()
    with pytest.raises(SubnetNotFoundError, match="subnet 9 does not exist") as info:
        await chain.subnet_params()
    assert "--netuid" in str(info.value) and "signature" not in str(info.value)
    with pytest.raises(SubnetNotFoundError):
        await chain.metagraph()
