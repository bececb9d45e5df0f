"""The dev chain's API through DevChainClient: the Chain protocol and refusals of bad input."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from template.chain import (
    AlreadyRegisteredError,
    Chain,
    CommitmentTooLargeError,
    ConnectionLostError,
    InsufficientBalanceError,
    InvalidRequestError,
    InvalidWeightsError,
    NotRegisteredError,
)
from template.chain.devchain import client as client_mod
from template.chain.devchain.auth import sign_request
from template.chain.devchain.client import DevChainClient
from template.chain.devchain.testing import running_devchain

from .conftest import fresh_key, make_neuron, wait_epoch

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def chain(tmp_path):
    async with running_devchain(
        tmp_path, block_time=0.1, tempo=5, weights_rate_limit=0, commit_reveal=0
    ) as c:
        yield c


async def _raw_post(chain, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(chain.url + path, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def _signed(chain, key, path: str, body: bytes) -> dict:
    return sign_request(key, "POST", path, body, chain.server.node_ss58)


async def test_client_implements_the_chain_protocol(chain):
    c, uid = await make_neuron(chain)
    assert isinstance(c, Chain)
    assert uid == 0 and await c.uid_of(c.hotkey) == 0
    assert await c.uid_of(fresh_key().ss58_address) is None
    b = await c.block()
    assert await c.wait_for_block(b + 2, timeout=10) >= b + 2
    t1, t2 = await c.block_timestamp(b), await c.block_timestamp(b + 2)
    assert t2 > t1 > 0
    with pytest.raises(TimeoutError):
        await c.wait_for_block(b + 10_000, timeout=0.3)
    p = await c.subnet_params()
    assert (p.netuid, p.tempo, p.max_commitment_bytes) == (chain.netuid, 5, 128)
    mg = await c.metagraph()
    n = mg.by_uid(0)
    assert n.hotkey == c.hotkey and n.coldkey == c.coldkey and n.registered_at >= 0
    await c.commit(b"s3://bucket")
    assert (await c.commitments()) == {c.hotkey: b"s3://bucket"}


async def test_transfer_and_balance(chain):
    cold = fresh_key()
    await chain.fund(cold.ss58_address, 12.5)
    c = await chain.client(fresh_key(), cold)
    assert await c.balance() == pytest.approx(12.5)
    dest = fresh_key().ss58_address
    await c.transfer(dest, 2.5)
    assert await c.balance() == pytest.approx(10.0)
    assert await c.balance(dest) == pytest.approx(2.5)
    with pytest.raises(InsufficientBalanceError):
        await c.transfer(dest, 100.0)
    with pytest.raises(InvalidRequestError):
        await c.transfer(dest, -1.0)
    assert await c.balance() == pytest.approx(10.0)


async def test_registration_needs_funds_and_happens_once(chain):
    poor = await chain.client(fresh_key(), fresh_key())
    with pytest.raises(InsufficientBalanceError):
        await poor.register()
    c, _ = await make_neuron(chain)
    with pytest.raises(AlreadyRegisteredError):
        await c.register()
    assert len(await c.metagraph()) == 1
    assert await c.balance() == pytest.approx(99.0)  # burn 1 TAO, charged once


async def test_bad_weights_are_refused_and_leave_state_intact(chain):
    v, _ = await make_neuron(chain, stake=50)
    _, m = await make_neuron(chain)
    await wait_epoch(v)  # the validator gets its permit
    await v.set_weights([m], [1.0], 0)
    before = await v.weights()
    for uids, ws in [([m], [1.0, 2.0]), ([m, 99], [1.0, 1.0]), ([m], [float("nan")]),
                     ([m], [-1.0]), ([m], [0.0]), ([m, m], [1.0, 1.0])]:  # fmt: skip
        with pytest.raises(InvalidWeightsError):
            await v.set_weights(uids, ws, 0)
    assert await v.weights() == before


async def test_overlong_commitment_is_refused(chain):
    c, _ = await make_neuron(chain)
    await c.commit(b"x" * 128)
    await c.wait_for_block(await c.block() + 1)
    with pytest.raises(CommitmentTooLargeError):
        await c.commit(b"y" * 129)
    assert (await c.commitments())[c.hotkey] == b"x" * 128


async def test_unregistered_key_cannot_commit_or_set_weights(chain):
    stranger = await chain.client(fresh_key())
    with pytest.raises(NotRegisteredError):
        await stranger.commit(b"hi")
    with pytest.raises(NotRegisteredError):
        await stranger.set_weights([0], [1.0], 0)
    assert await stranger.commitments() == {}


async def test_malformed_json_gets_a_json_error(chain, alice):
    body = b"{not json"
    status, err = await _raw_post(
        chain, "/tx/transfer", body, await _signed(chain, alice, "/tx/transfer", body)
    )
    assert status == 400 and err["error"]["code"] == "invalid_request"
    assert "JSON" in err["error"]["message"]
    body = json.dumps({"dest": 5, "tao": "x"}).encode()
    status, err = await _raw_post(
        chain, "/tx/transfer", body, await _signed(chain, alice, "/tx/transfer", body)
    )
    assert status == 400 and "dest" in err["error"]["message"]
    status, err = await _raw_post(chain, "/tx/nope", b"{}", {})
    assert status == 404 and err["error"]["code"] == "not_found"


async def test_signature_for_someone_else_is_refused(chain):
    victim, _ = await make_neuron(chain)
    attacker = fresh_key()
    body = json.dumps({"netuid": chain.netuid, "data": b"evil".hex()}).encode()
    headers = await _signed(chain, attacker, "/tx/commit", body)
    headers["X-Bittensor-Hotkey"] = victim.hotkey  # claim to be the victim
    status, err = await _raw_post(chain, "/tx/commit", body, headers)
    assert status == 401 and err["error"]["code"] == "bad_signature"
    # a valid signature over a different body does not carry over either
    other = json.dumps({"netuid": chain.netuid, "data": b"ok".hex()}).encode()
    headers = await _signed(chain, attacker, "/tx/commit", other)
    status, err = await _raw_post(chain, "/tx/commit", body, headers)
    assert status == 401
    assert await victim.commitments() == {}


async def test_replayed_request_is_refused(chain, alice):
    dest = fresh_key().ss58_address
    body = json.dumps({"dest": dest, "tao": 1.0}).encode()
    headers = await _signed(chain, alice, "/tx/transfer", body)
    status, _ = await _raw_post(chain, "/tx/transfer", body, headers)
    assert status == 200
    status, err = await _raw_post(chain, "/tx/transfer", body, headers)
    assert status == 409 and err["error"]["code"] == "replayed"
    c = await chain.client(alice, alice)
    assert await c.balance(dest) == pytest.approx(1.0)


async def test_client_maps_replay_to_a_typed_error(chain, alice, monkeypatch):
    c = await chain.client(alice, alice)
    dest = fresh_key().ss58_address
    body = json.dumps({"dest": dest, "tao": 1.0}).encode()  # what the client will send
    fixed = sign_request(alice, "POST", "/tx/transfer", body, chain.server.node_ss58)
    monkeypatch.setattr(client_mod, "sign_request", lambda *a: fixed)  # same nonce twice
    await c.transfer(dest, 1.0)
    with pytest.raises(InvalidRequestError, match="already accepted"):
        await c.transfer(dest, 1.0)
    assert await c.balance(dest) == pytest.approx(1.0)


async def test_sudo_is_for_the_owner_and_weights_version_is_enforced(chain, alice):
    v, _ = await make_neuron(chain, stake=50)
    _, m = await make_neuron(chain)
    with pytest.raises(InvalidRequestError, match="owner"):
        await v.sudo_set(weights_version=7)
    owner = await chain.client(alice, alice)
    await owner.sudo_set(weights_version=7)
    with pytest.raises(InvalidRequestError):
        await owner.sudo_set(no_such_param=1)
    await wait_epoch(v)
    with pytest.raises(InvalidRequestError, match="version_key"):
        await v.set_weights([m], [1.0], 6)
    assert (await v.set_weights([m], [1.0], 7)).success


async def test_many_clients_writing_at_once(chain):
    neurons = await asyncio.gather(*[make_neuron(chain) for _ in range(12)])
    uids = sorted(uid for _, uid in neurons)
    assert uids == list(range(12))
    await asyncio.gather(*[c.commit(f"peer-{uid}".encode()) for c, uid in neurons])
    got = await neurons[0][0].commitments()
    assert got == {c.hotkey: f"peer-{uid}".encode() for c, uid in neurons}


async def test_unreachable_chain_raises_connection_lost(monkeypatch):
    monkeypatch.setattr(client_mod, "BACKOFF_S", 0.01)
    async with DevChainClient("http://127.0.0.1:9", 1, fresh_key()) as c:
        with pytest.raises(ConnectionLostError):
            await c.block()


async def test_bad_fields_are_named_in_the_error(chain, alice):
    c = await chain.client(alice, alice)
    with pytest.raises(InvalidRequestError, match="'dest'"):
        await c.transfer("not-an-address", 1.0)
    with pytest.raises(InvalidRequestError, match="'hotkey'"):
        await c.register("5Fake")
    huge = await chain.client(alice, alice, netuid=2**70)
    with pytest.raises(InvalidRequestError, match="'netuid'"):
        await huge.register()
    assert len(await c.metagraph()) == 0


async def test_forged_set_weights_is_refused(chain):
    victim, _ = await make_neuron(chain, stake=10)
    _, m = await make_neuron(chain)
    await wait_epoch(victim)
    attacker = fresh_key()
    body = json.dumps({"netuid": chain.netuid, "uids": [m], "weights": [1.0], "version_key": 0})
    headers = await _signed(chain, attacker, "/tx/set_weights", body.encode())
    headers["X-Bittensor-Hotkey"] = victim.hotkey
    status, err = await _raw_post(chain, "/tx/set_weights", body.encode(), headers)
    assert status == 401 and err["error"]["code"] == "bad_signature"
    assert await victim.weights() == []


async def test_a_second_subnet_is_independent(chain, alice):
    owner = await chain.client(alice, alice, netuid=2)
    await owner.create_subnet(2, tempo=3, max_allowed_uids=5)
    with pytest.raises(InvalidRequestError, match="already exists"):
        await owner.create_subnet(2)
    params = await owner.subnet_params()
    assert params.tempo == 3 and params.owner_uid == 0  # the owner hotkey's uid, read from chain
    c, _ = await make_neuron(chain)
    on2 = await chain.client(c._hotkey, c._coldkey, netuid=2)
    assert await on2.register() == 1  # uid 0 is the owner hotkey, as on subtensor
    await make_neuron(chain)
    assert len(await c.metagraph()) == 2 and len(await on2.metagraph()) == 2
    assert (await on2.subnet_info())["owner_uid"] == 0


async def test_stop_releases_long_polls(tmp_path):
    async with running_devchain(tmp_path) as chain:
        session = aiohttp.ClientSession()
        poll = asyncio.create_task(session.get(chain.url + "/block?wait_for=1000000&timeout=30"))
        await asyncio.sleep(0.3)
        await asyncio.wait_for(chain.server.stop(), timeout=10)  # would hang 30 s otherwise
        resp = await poll
        assert resp.status == 200
        resp.release()
        await session.close()
