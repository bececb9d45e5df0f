"""Hostile input to the dev chain: strict JSON, validated values, isolated epochs, 400 not 500."""

from __future__ import annotations

import aiohttp
import pytest

from template.chain.devchain import rules, store
from template.chain.devchain.auth import sign_request
from template.chain.devchain.errors import DevChainError
from template.chain.devchain.strict_json import StrictJSONError, loads_strict
from template.chain.devchain.testing import running_devchain

from .devchain_sim import DevChainSim

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def chain(tmp_path):
    async with running_devchain(tmp_path, block_time=0.1, tempo=5) as c:
        yield c


async def _post(chain, key, op: str, body: bytes) -> tuple[int, dict]:
    path = f"/tx/{op}"
    headers = sign_request(key, "POST", path, body, chain.server.node_ss58)
    async with (
        aiohttp.ClientSession() as s,
        s.post(chain.url + path, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def _get(chain, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(chain.url + path) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    "body, why",
    [
        (b'{"netuid": 2, "params": {"burn": NaN}}', "NaN"),
        (b'{"netuid": 2, "params": {"emission_per_tempo": Infinity}}', "Infinity"),
        (b'{"netuid": 2, "netuid": 3, "params": {}}', "duplicate key"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"netuid": 2, "params": {"tempo": ' + b"9" * 400 + b"}}", "characters"),
        (b'{"netuid": 2, "params": {"burn": 1e999}}', "out of range"),
    ],
)
async def test_non_strict_json_is_a_400_that_says_why(chain, alice, body, why):
    status, reply = await _post(chain, alice, "create_subnet", body)
    assert status == 400 and why in reply["error"]["message"]
    assert 2 not in (await _get(chain, "/info"))[1]["netuids"]


@pytest.mark.parametrize(
    "params, why",
    [
        ({"burn": -1.0}, "burn"),
        ({"emission_per_tempo": 1e300}, "at most"),
        ({"tempo": 10**30}, "at most"),
        ({"kappa": 2.0}, "kappa"),
        ({"commit_reveal": 3}, "commit_reveal"),
        ({"stake_threshold": -5}, "stake_threshold"),
    ],
)
async def test_out_of_range_values_are_refused_by_create_and_sudo(chain, alice, params, why):
    client = await chain.client(alice, alice, netuid=3)
    with pytest.raises(Exception, match=why):
        await client.create_subnet(3, **params)
    owner = await chain.client(alice, alice)
    with pytest.raises(Exception, match=why):
        await owner.sudo_set(**params)
    status, info = await _get(chain, f"/subnets/{chain.netuid}")
    assert status == 200 and info["params"]["burn"] == 1.0


@pytest.mark.parametrize(
    "path",
    ["/blocks?last=abc", "/block?wait_for=x", "/subnets/99999999999999999999", "/blocks/1e5"],
)
async def test_bad_query_values_are_400(chain, path):
    status, reply = await _get(chain, path)
    assert status == 400 and reply["error"]["code"] == "invalid_request"


async def test_unknown_netuid_has_its_own_error(chain):
    status, reply = await _get(chain, "/subnets/42/metagraph")
    assert status == 404 and reply["error"]["code"] == "subnet_not_found"
    assert "42" in reply["error"]["message"]


def test_one_broken_subnet_cannot_stop_the_others(tmp_path):
    sim = DevChainSim(tmp_path / "iso.sqlite", tempo=3)
    sim.tx(store.add_balance, "owner-cold", 1000.0)
    sim.tx(rules.create_subnet, "owner-cold", 2, {"tempo": 3}, None)
    # a value that slipped past validation (an older node, a hand-edited db): epochs of
    # subnet 2 fail, subnet 1 keeps running its epochs
    sim.conn.execute('UPDATE subnets SET params=\'{"tempo": "x"}\' WHERE netuid=2')
    for _ in range(12):
        sim.step()
    last = {r["netuid"]: r["last_epoch"] for r in sim.conn.execute("SELECT * FROM subnets")}
    assert last[1] >= 9 and last[2] == 0
    assert store.current_block(sim.conn) == 12


def test_strict_json_parser_directly():
    assert loads_strict(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    for bad in (b"NaN", b'{"a": 1, "a": 2}', b"\xff", b'{"a": -Infinity}'):
        with pytest.raises(StrictJSONError):
            loads_strict(bad)
    assert loads_strict('["[[[["]') == ["[[[["]  # brackets inside strings do not count


@pytest.mark.parametrize(
    "body",
    [
        b'{"netuid": 1, "params": {"burn": NaN}}',
        b'{"netuid": 1, "params": {"emission_per_tempo": Infinity}}',
        b'{"netuid": 1, "params": {"tempo": ' + b"9" * 400 + b"}}",
    ],
)
async def test_sudo_set_refuses_the_same_and_the_subnet_stays_standard_json(chain, alice, body):
    status, reply = await _post(chain, alice, "sudo_set", body)
    assert status == 400 and reply["error"]["code"] == "invalid_request"
    async with aiohttp.ClientSession() as s, s.get(f"{chain.url}/subnets/1") as r:
        info = loads_strict(await r.read())  # no NaN/Infinity served
    assert info["params"]["burn"] == 1.0 and info["params"]["emission_per_tempo"] == 1.0


def test_creating_subnets_costs_a_lock_and_is_bounded(tmp_path):
    sim = DevChainSim(tmp_path / "lock.sqlite")
    with pytest.raises(DevChainError, match="lock cost"):
        sim.tx(rules.create_subnet, "poor", 2, {}, None)
    sim.tx(store.add_balance, "rich", 1e6)
    for netuid in range(2, rules.MAX_SUBNETS + 1):
        sim.tx(rules.create_subnet, "rich", netuid, {"tempo": 1}, None)
    with pytest.raises(DevChainError, match="at most"):
        sim.tx(rules.create_subnet, "rich", 999, {}, None)
    assert store.balance(sim.conn, "rich") == pytest.approx(1e6 - 100.0 * (rules.MAX_SUBNETS - 1))
    sim.step(2)  # every subnet's epoch in one block still runs
    assert len(sim.epochs_run) >= 1
