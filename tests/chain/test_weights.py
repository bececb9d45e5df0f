"""validator/weights.py against the chain's rules: enough non-zero weights, the cap can be met,
and a dropped reveal is detected on the dev chain."""

from __future__ import annotations

import pytest
from bittensor.intents.weights import clip_to_max_weight, normalize

from template.chain.devchain import subnets
from template.chain.devchain.testing import running_devchain
from template.chain.types import SubnetParams
from template.validator.weights import (
    FILLER_SHARE,
    WeightsTracker,
    compute_weights,
    filler_order,
    pending_check,
    required_weights,
    verify_weights,
    weights_match,
)

from .conftest import make_neuron
from .devchain_sim import DevChainSim


def params(min_w: int = 1, limit: float = 1.0, **kw) -> SubnetParams:
    return SubnetParams(1, 10, 2, min_allowed_weights=min_w, max_weight_limit=limit, **kw)


@pytest.mark.parametrize("min_w, limit, n", [(4, 1.0, 10), (1024, 1.0, 10), (1, 0.25, 10)])
def test_weights_survive_the_sdk_conforming(min_w, limit, n):
    uids = list(range(n))
    w = compute_weights({3: 0.9}, uids, params(min_w, limit), exclude={0})
    need = required_weights(params(min_w, limit), n)
    assert len(w) == need and all(v > 0 for v in w.values())
    assert sum(w.values()) == pytest.approx(1.0) and max(w.values()) <= limit + 1e-9
    # what SetWeights sends: clip, then u16 max-upscale dropping zeros
    keys = sorted(w)
    floats = [w[u] for u in keys]
    if limit < 1.0:
        floats = clip_to_max_weight(floats, limit)
    sent_uids, _ = normalize(keys, floats)
    assert len(sent_uids) >= min(min_w, n)
    assert w[3] == max(w.values())  # the one miner that earned keeps the largest weight


def test_fillers_go_first_where_they_pay_no_one():
    uids = [0, 1, 2, 3, 4, 5]
    # own uid (the epoch drops self-weight), then the owner's uid (its incentive is burned)
    w = compute_weights({5: 1.0}, uids, params(3, owner_uid=0), exclude={1, 2}, own_uid=2)
    assert set(w) == {0, 2, 5}
    # then other validators, then miners by uid; an earner is never displaced
    w = compute_weights({5: 1.0}, uids, params(5, owner_uid=0), exclude={1, 2}, own_uid=2)
    assert set(w) == {0, 1, 2, 3, 5}
    w = compute_weights({0: 1.0, 5: 2.0}, uids, params(3, owner_uid=0), exclude={1}, own_uid=1)
    assert set(w) == {0, 1, 5} and w[0] > 0.3  # the owner uid earned: it is no filler here
    assert filler_order(uids, {5}, {1}, own_uid=None, owner_uid=None) == [1, 0, 2, 3, 4]
    assert compute_weights({}, [1, 2], params(4), exclude=set()) == {}


def _epoch_after_weights(tmp_path, min_w: int, limit: float = 1.0) -> tuple[list, dict[str, int]]:
    """A small subnet on the dev chain (owner, validator, one honest miner, two copiers that
    earned nothing): the validator sets compute_weights' vector, then an epoch runs."""
    sim = DevChainSim(tmp_path / f"f{min_w}.sqlite", tempo=5, weights_rate_limit=0, commit_reveal=0)
    uid = {h: sim.register(h, "owner-cold" if h == "owner-hot" else None) for h in NAMES}
    sim.stake("v", 100.0)
    sim.next_epoch()  # permits
    sim.sudo(min_allowed_weights=min_w, max_weight_limit=limit)
    _, hp = subnets.subnet(sim.conn, sim.netuid)
    p = params(
        hp.min_allowed_weights,
        hp.max_weight_limit,
        owner_uid=subnets.owner_uid(sim.conn, sim.netuid),
    )
    w = compute_weights(
        {uid["honest"]: 0.8}, sorted(uid.values()), p, exclude={uid["v"]}, own_uid=uid["v"]
    )
    assert uid["owner-hot"] not in (uid["v"], uid["honest"])  # read from the chain, not assumed
    sim.set_weights("v", w)
    sim.next_epoch()
    return sim.neurons(), uid


NAMES = ("owner-hot", "v", "honest", "copier-a", "copier-b")


def test_fillers_pay_non_earners_nothing_when_the_chain_allows(tmp_path):
    rows, uid = _epoch_after_weights(tmp_path, min_w=3)
    copiers = [rows[uid[c]] for c in ("copier-a", "copier-b")]
    assert all(r["incentive"] == 0 and r["emission"] == 0 for r in copiers)
    assert rows[uid["honest"]]["incentive"] > 0.999  # the owner's filler share is burned


def test_the_residual_when_min_allowed_weights_covers_every_uid(tmp_path):
    """MinAllowedWeights = n forces a weight on each copier: each gets one u16 step of the
    honest miner's weight, about 1.5e-5 of the incentive (the residual docs/scoring.md notes)."""
    rows, uid = _epoch_after_weights(tmp_path, min_w=len(NAMES))
    leak = [rows[uid[c]]["incentive"] for c in ("copier-a", "copier-b")]
    assert all(0 < x <= FILLER_SHARE for x in leak)
    assert rows[uid["honest"]]["incentive"] >= 1 - 3 * FILLER_SHARE


def test_reveal_delay_and_matching():
    p = params(commit_reveal=True, reveal_period_epochs=2)
    assert pending_check({1: 1.0}, 100, p).check_at == 100 + 2 * 10 + 2
    assert pending_check({1: 1.0}, 100, params()).check_at == 101
    assert weights_match({1: 3.0, 2: 1.0}, {1: 0.7502, 2: 0.2498})
    assert not weights_match({1: 3.0, 2: 1.0}, {1: 0.5, 2: 0.5})
    assert not weights_match({1: 1.0}, {1: 0.9, 7: 0.1})
    assert not weights_match({1: 1.0}, {})


@pytest.mark.timeout(60)
async def test_a_dropped_reveal_is_reported_on_the_dev_chain(tmp_path):
    async with running_devchain(tmp_path, block_time=0.1, tempo=3) as chain:
        v, v_uid = await make_neuron(chain)  # no stake: no permit, so the reveal is dropped
        _, m_uid = await make_neuron(chain)
        p = await v.subnet_params()
        assert p.commit_reveal
        result = await v.set_weights([m_uid], [1.0], 0)
        assert result.success  # accepted as a commit
        pending = pending_check({m_uid: 1.0}, result.block, p)
        await v.wait_for_block(pending.check_at, timeout=30)
        check = await verify_weights(v, v_uid, pending)
        assert not check.landed and "not in force" in check.message
        reveals = await v.reveals()
        assert reveals[0]["ok"] is False and "no_validator_permit" in reveals[0]["message"]


async def test_tracker_checks_even_when_weights_are_sent_faster_than_the_delay():
    class Chain:
        row: dict[int, float] = {}

        async def block(self):
            return now

        async def weights_of(self, uid):
            return self.row

    chain, tracker = Chain(), WeightsTracker()
    p = params(commit_reveal=True, reveal_period_epochs=1)  # delay 12 blocks, sends every 10
    results = []
    for now in range(100, 200, 10):
        results.append(await tracker.check(chain, 1, now))
        tracker.sent({2: float(now)}, now, p)
        chain.row = {2: 1.0}  # the previous send got revealed
    checks = [r for r in results if r is not None]
    assert len(checks) >= 7 and all(c.landed for c in checks)
    chain.row = {}  # nothing lands any more: the next due check says so
    assert not (await tracker.check(chain, 1, 10_000)).landed
    assert await tracker.check(chain, 1, 10_001) is None  # nothing left to check
