"""validator/weights.py against the chain's rules: enough non-zero weights, the cap can be met,
and a dropped reveal is detected on the dev chain."""

from __future__ import annotations

import pytest
from bittensor.intents.weights import clip_to_max_weight, normalize

from template.chain.devchain.testing import running_devchain
from template.chain.types import SubnetParams
from template.validator.weights import (
    WeightsTracker,
    compute_weights,
    pending_check,
    required_weights,
    verify_weights,
    weights_match,
)

from .conftest import make_neuron


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


def test_filler_prefers_miners_then_other_validators():
    w = compute_weights({5: 1.0}, [0, 1, 2, 3, 4, 5], params(4), exclude={0, 1})
    assert set(w) == {2, 3, 4, 5}
    w = compute_weights({5: 1.0}, [0, 1, 2, 5], params(4), exclude={0, 1})
    assert set(w) == {0, 1, 2, 5}
    assert compute_weights({}, [1, 2], params(4), exclude=set()) == {}


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
