"""Yuma consensus math on hand-computed cases (see docs/devchain.md for the formulas)."""

from __future__ import annotations

import numpy as np
import pytest

from template.chain.devchain.yuma import is_topk_nonzero, weighted_median_col, yuma_epoch

ALL = np.ones(5, dtype=bool)


def _colluding_case():
    """Validators 0,1 (stake 40, 30) split evenly over miners 3,4; validator 2 (stake 30)
    colludes with miner 4 and gives it everything."""
    w = np.zeros((5, 5))
    w[0, 3] = w[0, 4] = 1.0
    w[1, 3] = w[1, 4] = 1.0
    w[2, 4] = 1.0
    stake = np.array([40.0, 30.0, 30.0, 0.0, 0.0])
    return w, stake


def test_weighted_median_is_the_weight_kappa_of_the_stake_supports():
    stake = np.array([0.2, 0.3, 0.5])
    col = np.array([[0.9], [0.5], [0.1]])
    assert weighted_median_col(stake, col, 0.5)[0] == pytest.approx(0.5)
    assert weighted_median_col(stake, col, 0.6)[0] == pytest.approx(0.1)
    assert weighted_median_col(stake, col, 0.2)[0] == pytest.approx(0.9)
    assert weighted_median_col(np.zeros(3), col, 0.5)[0] == 0.0


def test_colluding_minority_is_clipped_to_consensus():
    w, stake = _colluding_case()
    r = yuma_epoch(w, stake, np.zeros((5, 5)), active=ALL, permits=ALL)

    # consensus: the majority's 0.5 for both miners; the colluder's 1.0 on miner 4 is clipped
    np.testing.assert_allclose(r.consensus, [0, 0, 0, 0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(r.validator_trust, [1.0, 1.0, 0.5, 0, 0], atol=1e-12)
    # ranks: 0.4*0.5 + 0.3*0.5 = 0.35 for miner 3; 0.2 + 0.15 + 0.15 (clipped) = 0.5 for miner 4
    np.testing.assert_allclose(r.ranks, [0, 0, 0, 0.35, 0.5], atol=1e-12)
    np.testing.assert_allclose(r.trust, [0, 0, 0, 1.0, 0.5 / 0.65], atol=1e-12)
    np.testing.assert_allclose(r.incentive, [0, 0, 0, 7 / 17, 10 / 17], atol=1e-12)
    # without clipping miner 4 would get the pre-rank share 0.65; the colluder gained it less
    assert r.incentive[4] < 0.65
    # bonds (first epoch): column-normalised clipped weights x stake
    np.testing.assert_allclose(r.bonds[:3, 3], [4 / 7, 3 / 7, 0], atol=1e-12)
    np.testing.assert_allclose(r.bonds[:3, 4], [0.4, 0.3, 0.3], atol=1e-12)
    # dividends: d_i = sum_j B_ij I_j -> the colluder earns 3/17 < its 30% stake
    np.testing.assert_allclose(r.dividends, [8 / 17, 6 / 17, 3 / 17, 0, 0], atol=1e-12)
    # emission: 50/50 miners (incentive) and validators (dividends)
    np.testing.assert_allclose(r.server_share.sum(), 0.5)
    np.testing.assert_allclose(r.validator_share.sum(), 0.5)
    np.testing.assert_allclose(r.validator_share[:3], [4 / 17, 3 / 17, 1.5 / 17], atol=1e-12)


def test_bonds_are_an_ema_of_previous_bonds():
    w = np.zeros((3, 3))
    w[0, 2] = w[1, 2] = 1.0
    prev = np.zeros((3, 3))
    prev[1, 2] = 1.0  # validator 1 held all of miner 2's bonds before
    r = yuma_epoch(
        w, np.array([60.0, 40.0, 0]), prev, active=np.ones(3, bool), permits=np.ones(3, bool)
    )
    # delta = [0.6, 0.4]; ema = 0.1 * delta + 0.9 * [0, 1] = [0.06, 0.94]
    np.testing.assert_allclose(r.bonds[:2, 2], [0.06, 0.94], atol=1e-12)
    np.testing.assert_allclose(r.dividends, [0.06, 0.94, 0], atol=1e-12)
    np.testing.assert_allclose(r.incentive, [0, 0, 1.0])


def test_self_weight_unpermitted_and_inactive_validators_are_masked():
    w = np.zeros((4, 4))
    w[0, 0] = w[0, 2] = 1.0  # self-weight is dropped: row becomes all on miner 2
    w[1, 3] = 1.0  # validator 1 has no permit: ignored
    w[3, 3] = 0.0
    stake = np.array([50.0, 50.0, 0, 0])
    permits = np.array([True, False, False, False])
    r = yuma_epoch(w, stake, np.zeros((4, 4)), active=np.ones(4, bool), permits=permits)
    np.testing.assert_allclose(r.incentive, [0, 0, 1.0, 0])
    np.testing.assert_allclose(r.active_stake, [1.0, 0, 0, 0])
    np.testing.assert_allclose(r.dividends, [1.0, 0, 0, 0])

    inactive = np.array([False, True, True, True])
    r = yuma_epoch(w, stake, np.zeros((4, 4)), active=inactive, permits=np.ones(4, bool))
    np.testing.assert_allclose(r.incentive, [0, 0, 0, 1.0])  # only validator 1 counts now


def test_outdated_weights_are_masked():
    w = np.zeros((3, 3))
    w[0, 1] = w[0, 2] = 1.0
    outdated = np.zeros((3, 3), bool)
    outdated[0, 2] = True  # uid 2 re-registered after validator 0 set weights
    r = yuma_epoch(
        w,
        np.array([1.0, 0, 0]),
        np.zeros((3, 3)),
        active=np.ones(3, bool),
        permits=np.ones(3, bool),
        outdated=outdated,
    )
    np.testing.assert_allclose(r.incentive, [0, 1.0, 0])


def test_no_weights_pays_validators_by_stake():
    r = yuma_epoch(
        np.zeros((3, 3)),
        np.array([3.0, 1.0, 0]),
        np.zeros((3, 3)),
        active=np.ones(3, bool),
        permits=np.ones(3, bool),
    )
    np.testing.assert_allclose(r.server_share, 0)
    np.testing.assert_allclose(r.validator_share, [0.75, 0.25, 0])
    np.testing.assert_allclose(r.pruning_score, [0.75, 0.25, 0])


def test_topk_permits_skip_zero_stake():
    np.testing.assert_array_equal(
        is_topk_nonzero(np.array([5.0, 0, 7, 1, 0]), 2), [True, False, True, False, False]
    )
    np.testing.assert_array_equal(is_topk_nonzero(np.array([5.0, 0, 0]), 2), [True, False, False])
