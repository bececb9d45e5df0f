"""SubtensorChain specifics, through the real SDK down to FakeSubstrate: errors, retries, encoding."""

from __future__ import annotations

import math

import bittensor as bt
import pytest

from template.chain import (
    ChainError,
    CommitmentTooLargeError,
    ConnectionLostError,
    InsufficientBalanceError,
    InvalidRequestError,
    InvalidWeightsError,
    NoValidatorPermitError,
    RateLimitedError,
)
from template.chain.subtensor import SubtensorChain
from template.chain.subtensor_commitments import commitment_info, raw_field_bytes, text_to_bytes
from template.chain.subtensor_errors import to_chain_error
from template.chain.subtensor_retry import RetryPolicy
from template.signing import dev_keypair
from tests.chain.fake_substrate import FakeSubstrate

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


def make_chain(fake: FakeSubstrate, hotkey, coldkey=None, netuid: int = 1) -> SubtensorChain:
    client = bt.Client("local", substrate=fake)
    return SubtensorChain("local", netuid, hotkey, coldkey, client=client, retry=FAST_RETRY)


@pytest.fixture
def keys():
    return {name: dev_keypair(f"//adapter-{name}") for name in ("v", "m", "cold", "x")}


@pytest.fixture
def fake(keys):
    f = FakeSubstrate(netuid=1, block_time=0.05, commit_reveal=False)  # the plaintext path
    f.fund(keys["cold"].ss58_address, 1000)
    return f


async def next_epoch(fake: FakeSubstrate, chain: SubtensorChain) -> None:
    """Wait until the fake has run an epoch (permits are granted there)."""
    start = fake.epoch_index
    await chain.wait_for_block(fake.last_epoch_block + fake.tempo, timeout=10)
    assert fake.epoch_index > start


async def validator_and_miner(fake, keys, stake=10.0):
    v = await make_chain(fake, keys["v"], keys["cold"]).connect()
    m = make_chain(fake, keys["m"], keys["cold"])
    v_uid = await v.register()
    m_uid = await m.register()
    await v.add_stake(stake)
    await next_epoch(fake, v)
    return v, m, v_uid, m_uid


# --- the happy path really goes through the SDK, signed by the right key -----------
async def test_writes_are_signed_by_the_right_key(fake, keys):
    v, _m, v_uid, m_uid = await validator_and_miner(fake, keys)
    await v.commit(b"\x80abc")
    await v.set_weights([v_uid, m_uid], [0.5, 0.5], version_key=3)
    signers = {(mod, fn): who for mod, fn, who in fake.submitted}
    assert signers[("SubtensorModule", "burned_register")] == keys["cold"].ss58_address
    assert signers[("SubtensorModule", "add_stake")] == keys["cold"].ss58_address
    assert signers[("Commitments", "set_commitment")] == keys["v"].ss58_address
    assert signers[("SubtensorModule", "set_mechanism_weights")] == keys["v"].ss58_address
    row = dict(fake.neurons[v_uid].weights)
    assert row == {v_uid: 65535, m_uid: 65535}  # SDK max-upscales to u16


async def test_version_key_is_passed_to_the_chain(fake, keys):
    fake.weights_version_key = 5
    v, _m, v_uid, _ = await validator_and_miner(fake, keys)
    with pytest.raises(InvalidRequestError, match="IncorrectWeightVersionKey"):
        await v.set_weights([v_uid], [1.0], version_key=4)
    assert (await v.set_weights([v_uid], [1.0], version_key=5)).success


async def test_sdk_conforms_weights_to_max_weight_limit(fake, keys):
    fake.max_weights_limit = 32768  # about 0.5
    v, _m, v_uid, m_uid = await validator_and_miner(fake, keys)
    params = await v.subnet_params()
    assert params.max_weight_limit == pytest.approx(32768 / 65535)
    x_uid = await make_chain(fake, keys["x"], keys["cold"]).register()
    # 0.8 of the total breaks the limit; the SDK clips before sending so the chain accepts it
    result = await v.set_weights([v_uid, m_uid, x_uid], [0.8, 0.1, 0.1], version_key=0)
    assert result.success and result.block is not None
    values = dict(fake.neurons[v_uid].weights)
    assert max(values.values()) * 65535 <= fake.max_weights_limit * sum(values.values())


# --- errors are typed ---------------------------------------------------------------
async def test_rate_limited_weights(fake, keys):
    fake.weights_rate_limit = 1000
    v, _m, v_uid, _ = await validator_and_miner(fake, keys)
    await v.set_weights([v_uid], [1.0], version_key=0)
    with pytest.raises(RateLimitedError):
        await v.set_weights([v_uid], [1.0], version_key=0)


async def test_no_validator_permit(fake, keys):
    v, m, v_uid, m_uid = await validator_and_miner(fake, keys)
    with pytest.raises(NoValidatorPermitError):
        await m.set_weights([v_uid, m_uid], [1.0, 1.0], version_key=0)  # m holds no stake


@pytest.mark.parametrize(
    "uids, weights",
    [([0, 1], [1.0]), ([0], [-1.0]), ([0], [math.nan]), ([0, 0], [1.0, 1.0]), ([0], [0.0])],
)
async def test_invalid_weights_are_refused_before_sending(fake, keys, uids, weights):
    v, _m, _v_uid, _ = await validator_and_miner(fake, keys)
    sent = len(fake.submitted)
    with pytest.raises(InvalidWeightsError):
        await v.set_weights(uids, weights, version_key=0)
    assert len(fake.submitted) == sent


async def test_commitment_too_large_is_refused_before_signing(fake, keys):
    v, *_ = await validator_and_miner(fake, keys)
    sent = len(fake.submitted)
    with pytest.raises(CommitmentTooLargeError):
        await v.commit(b"\x80" * 129)
    assert len(fake.submitted) == sent


async def test_commitment_space_quota_maps_to_rate_limited(fake, keys):
    fake.max_space = 250  # room for two commitments per tempo
    v, *_ = await validator_and_miner(fake, keys)
    await v.commit(b"\x80one")
    await v.commit(b"\x80two")
    with pytest.raises(RateLimitedError):
        await v.commit(b"\x80three")


async def test_registration_without_funds(fake, keys):
    poor = dev_keypair("//adapter-poor")
    chain = await make_chain(fake, keys["x"], poor).connect()
    with pytest.raises(InsufficientBalanceError):
        await chain.register()


async def test_coldkey_operations_need_a_coldkey(fake, keys):
    chain = await make_chain(fake, keys["x"]).connect()
    with pytest.raises(InvalidRequestError, match="coldkey"):
        await chain.register()
    with pytest.raises(InvalidRequestError, match="coldkey"):
        await chain.add_stake(1.0)


async def test_missing_subnet_is_a_clear_error(fake, keys):
    chain = await make_chain(fake, keys["x"], netuid=7).connect()
    with pytest.raises(InvalidRequestError, match="subnet 7 does not exist"):
        await chain.subnet_params()
    with pytest.raises(InvalidRequestError, match="subnet 7 does not exist"):
        await chain.metagraph()


async def test_timestamp_of_a_future_block(fake, keys):
    chain = await make_chain(fake, keys["x"]).connect()
    with pytest.raises(InvalidRequestError):
        await chain.block_timestamp(await chain.block() + 1000)


def test_unknown_network_is_a_clear_error(keys):
    with pytest.raises(InvalidRequestError, match="Unknown network"):
        SubtensorChain("moon", 1, keys["x"])


# --- resilience ---------------------------------------------------------------------
async def test_transient_read_failures_reconnect_and_retry(fake, keys):
    chain = await make_chain(fake, keys["x"]).connect()
    assert fake.connects == 1
    fake.fail_reads = 2
    assert await chain.block() >= 100
    assert fake.connects >= 2  # the dead connection was replaced, not retried against


async def test_persistent_failure_gives_up_with_connection_lost(fake, keys):
    chain = await make_chain(fake, keys["x"]).connect()
    fake.fail_reads = 100
    with pytest.raises(ConnectionLostError):
        await chain.block()
    # bounded: each attempt costs one read plus (at most) one reconnect read
    assert 100 - fake.fail_reads <= 2 * FAST_RETRY.attempts


async def test_pool_race_on_submit_is_retried(fake, keys):
    v, *_ = await validator_and_miner(fake, keys)
    fake.fail_submits = 1
    await v.commit(b"\x80again")
    assert (await v.commitments())[keys["v"].ss58_address] == b"\x80again"


async def test_chain_rejections_are_not_retried(fake, keys):
    chain = await make_chain(fake, keys["x"], dev_keypair("//adapter-poor2")).connect()
    before = len(fake.submitted)
    with pytest.raises(InsufficientBalanceError):
        await chain.register()
    assert len(fake.submitted) == before + 1


# --- metagraph and commitment decoding ---------------------------------------------
async def test_metagraph_normalises_u16_scores(fake, keys):
    v, _m, v_uid, m_uid = await validator_and_miner(fake, keys, stake=12.5)
    fake.set_scores(m_uid, incentive=0.25, trust=1.0, consensus=0.5)
    fake.set_scores(v_uid, dividends=0.75)
    fake.neurons[m_uid].emission_rao = 3 * 10**9
    graph = await v.metagraph()
    miner, validator = graph.by_uid(m_uid), graph.by_uid(v_uid)
    assert miner.incentive == pytest.approx(0.25, abs=1e-4)
    assert miner.trust == pytest.approx(1.0) and miner.consensus == pytest.approx(0.5, abs=1e-4)
    assert miner.emission == pytest.approx(3.0)
    assert validator.dividends == pytest.approx(0.75, abs=1e-4)
    # stake is alpha, bought at the subnet's price
    assert validator.stake == pytest.approx(12.5 / fake.alpha_price) and validator.validator_permit
    assert not miner.validator_permit


async def test_commitments_skip_deregistered_hotkeys(fake, keys):
    v, m, *_ = await validator_and_miner(fake, keys)
    await v.commit(b"\x80v")
    await m.commit(b"\x80m")
    fake.neurons = [n for n in fake.neurons if n.hotkey != keys["m"].ss58_address]
    assert await v.commitments() == {keys["v"].ss58_address: b"\x80v"}


def test_commitment_info_is_one_raw_field():
    assert commitment_info(b"\x80ab") == {"fields": [{"Raw3": b"\x80ab"}]}
    with pytest.raises(CommitmentTooLargeError):
        commitment_info(bytes(129))
    with pytest.raises(InvalidRequestError):
        commitment_info(b"")


def test_commitment_decoding_helpers():
    assert raw_field_bytes([{"Raw2": "0x80ff"}, {"Raw1": "0x41"}]) == b"\x80\xffA"
    assert raw_field_bytes([{"Sha256": "0x00"}]) is None
    assert text_to_bytes("0x80ff") == b"\x80\xff"
    assert text_to_bytes("hello") == b"hello"
    assert text_to_bytes("0xnothex") == b"0xnothex"


def test_sdk_errors_map_to_typed_errors():
    assert isinstance(
        to_chain_error(bt.ChainError("x", "HotKeyNotRegisteredInSubNet"), "a"), ChainError
    )
    cases = {
        "HotKeyAlreadyRegisteredInSubNet": "AlreadyRegisteredError",
        "NeuronNoValidatorPermit": "NoValidatorPermitError",
        "SettingWeightsTooFast": "RateLimitedError",
        "AccountNotAllowedCommit": "NotRegisteredError",
        "NotEnoughBalanceToStake": "InsufficientBalanceError",
    }
    for name, expected in cases.items():
        assert type(to_chain_error(bt.ChainError("x", name), "a")).__name__ == expected
    assert isinstance(to_chain_error(bt.RpcConnectionError("down"), "a"), ConnectionLostError)
    weights_error = to_chain_error(bt.ChainError("x", "WeightVecLengthIsLow"), "a", weights=True)
    assert isinstance(weights_error, InvalidWeightsError)
