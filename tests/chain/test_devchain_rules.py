"""Subnet rules on a running dev chain: permits, rate limits, weight limits, pruning, epochs."""

from __future__ import annotations

import asyncio

import pytest

from template.chain import (
    InvalidRequestError,
    InvalidWeightsError,
    NoValidatorPermitError,
    RateLimitedError,
)
from template.chain.devchain.testing import running_devchain

from .conftest import make_neuron, wait_epoch

pytestmark = pytest.mark.timeout(90)


async def test_validator_permits_go_to_the_top_stakes(tmp_path):
    async with running_devchain(
        tmp_path, tempo=4, max_allowed_validators=2, commit_reveal=0
    ) as chain:
        low, _ = await make_neuron(chain, stake=10)
        mid, _ = await make_neuron(chain, stake=20)
        top, _ = await make_neuron(chain, stake=30)
        _, m = await make_neuron(chain)
        await wait_epoch(top)
        permits = {n.uid: n.validator_permit for n in (await top.metagraph()).neurons}
        assert permits == {0: False, 1: True, 2: True, 3: False}
        with pytest.raises(NoValidatorPermitError):
            await low.set_weights([m], [1.0], 0)
        assert (await low.set_weights([0], [1.0], 0)).success  # self-weight needs no permit
        assert (await top.set_weights([m], [1.0], 0)).success
        # staking more moves the permit at the next epoch
        await chain.fund(low.coldkey, 100)
        await low.add_stake(100)
        await wait_epoch(top)
        permits = {n.uid: n.validator_permit for n in (await top.metagraph()).neurons}
        assert permits[0] and not permits[1]


async def test_weights_and_commitment_rate_limits(tmp_path):
    async with running_devchain(
        tmp_path, tempo=3, weights_rate_limit=1000, commitment_rate_limit=1000
    ) as chain:
        v, _ = await make_neuron(chain, stake=10)
        _, m = await make_neuron(chain)
        await wait_epoch(v)
        await v.set_weights([m], [1.0], 0)
        with pytest.raises(RateLimitedError, match="retry at block"):
            await v.set_weights([m], [1.0], 0)
        await v.commit(b"a")
        with pytest.raises(RateLimitedError):
            await v.commit(b"b")
        assert (await v.commitments())[v.hotkey] == b"a"


async def test_min_allowed_weights_and_max_weight_limit(tmp_path):
    async with running_devchain(
        tmp_path,
        tempo=3,
        min_allowed_weights=2,
        max_weight_limit=0.6,
        weights_rate_limit=0,
        commit_reveal=0,
    ) as chain:
        v, _ = await make_neuron(chain, stake=10)
        _, m1 = await make_neuron(chain)
        _, m2 = await make_neuron(chain)
        await wait_epoch(v)
        with pytest.raises(InvalidWeightsError, match="min_allowed_weights"):
            await v.set_weights([m1], [1.0], 0)
        with pytest.raises(InvalidWeightsError, match="max_weight_limit"):
            await v.set_weights([m1, m2], [0.7, 0.3], 0)
        assert (await v.set_weights([m1, m2], [0.55, 0.45], 0)).success


async def test_epoch_pays_incentive_to_weighted_miner(tmp_path):
    async with running_devchain(tmp_path, tempo=4, weights_rate_limit=0) as chain:
        v, vu = await make_neuron(chain, stake=50)
        _, m = await make_neuron(chain)
        await wait_epoch(v)
        await v.set_weights([m], [1.0], 0)
        await wait_epoch(v)
        mg = await v.metagraph()
        miner, val = mg.by_uid(m), mg.by_uid(vu)
        assert miner.incentive == pytest.approx(1.0) and miner.consensus == pytest.approx(1.0)
        assert miner.trust == pytest.approx(1.0)
        assert val.dividends == pytest.approx(1.0)
        # 18% owner cut, then 50/50: 0.41 each (commit-reveal on: revealed at this epoch)
        assert miner.emission == pytest.approx(0.41) and val.emission == pytest.approx(0.41)
        assert miner.stake > 0  # emission is paid as stake, as on subtensor


async def test_full_subnet_replaces_lowest_pruning_score(tmp_path):
    async with running_devchain(
        tmp_path, tempo=3, max_allowed_uids=3, immunity_period=0, weights_rate_limit=0
    ) as chain:
        v, vu = await make_neuron(chain, stake=50)
        _, good = await make_neuron(chain)
        loser, bad = await make_neuron(chain)
        await loser.commit(b"old")
        await wait_epoch(v)
        await v.set_weights([good, bad], [0.9, 0.1], 0)
        await wait_epoch(v)
        await v.set_weights([good], [1.0], 0)  # the loser's emission drops to 0
        await wait_epoch(v)
        newcomer, uid = await make_neuron(chain)
        assert uid == bad
        mg = await v.metagraph()
        assert len(mg) == 3 and mg.by_uid(bad).hotkey == newcomer.hotkey
        assert mg.by_hotkey(loser.hotkey) is None
        assert mg.by_uid(bad).incentive == 0 and mg.by_uid(bad).emission == 0
        assert loser.hotkey not in await v.commitments()
        assert all(w["dst"] != bad for w in await v.weights())  # its weight column was reset
        assert await loser.uid_of(loser.hotkey) is None


async def test_full_subnet_of_immune_neurons_refuses_registration(tmp_path):
    async with running_devchain(tmp_path, max_allowed_uids=2, immunity_period=10_000) as chain:
        await make_neuron(chain)
        await make_neuron(chain)
        with pytest.raises(InvalidRequestError, match="immune"):
            await make_neuron(chain)


async def test_many_validators_set_weights_at_once(tmp_path):
    async with running_devchain(tmp_path, tempo=4, weights_rate_limit=0, commit_reveal=0) as chain:
        validators = await asyncio.gather(*[make_neuron(chain, stake=10 + i) for i in range(5)])
        miners = await asyncio.gather(*[make_neuron(chain) for _ in range(3)])
        await wait_epoch(validators[0][0])
        muids = [uid for _, uid in miners]
        results = await asyncio.gather(
            *[v.set_weights(muids, [1.0, 2.0, 1.0], 0) for v, _ in validators]
        )
        assert all(r.success for r in results)
        rows = await validators[0][0].weights()
        assert sorted({r["src"] for r in rows}) == sorted(uid for _, uid in validators)
        assert len(rows) == 15
        assert {round(r["w"], 6) for r in rows if r["dst"] == muids[1]} == {0.5}
