"""The dev chain's epoch against subtensor's current rules, driven in-process (fast)."""

from __future__ import annotations

import numpy as np
import pytest

from template.chain.devchain import rules, store
from template.chain.devchain.errors import DevChainError
from template.chain.devchain.params import SubnetHyperparams
from template.chain.devchain.yuma import is_topk_nonzero

from .devchain_sim import DevChainSim


@pytest.fixture
def sim(tmp_path):
    return DevChainSim(tmp_path / "sim.sqlite", tempo=5, weights_rate_limit=0)


def test_defaults_follow_the_chain():
    hp = SubnetHyperparams()
    assert hp.kappa == pytest.approx(32767 / 65535)
    assert hp.commit_reveal == 1 and hp.reveal_period_epochs == 1
    assert hp.owner_cut == pytest.approx(0.18) and hp.max_registrations_per_block == 1


def test_permit_ties_keep_the_higher_uid():
    assert is_topk_nonzero(np.array([5.0, 5.0, 5.0, 0.0]), 2).tolist() == [
        False,
        True,
        True,
        False,
    ]
    assert is_topk_nonzero(np.array([0.0, 3.0]), 5).tolist() == [False, True]


def test_epochs_run_at_last_epoch_plus_tempo_and_on_owner_trigger(sim):
    first = sim.next_epoch()
    assert first == 5 and sim.next_epoch() == 10
    sim.sudo(tempo=7)
    assert sim.next_epoch() == 17
    with pytest.raises(DevChainError, match="commit-reveal"):
        sim.tx(rules.trigger_epoch, sim.netuid, "owner-cold")
    sim.sudo(commit_reveal=0)
    sim.step()
    at = sim.tx(rules.trigger_epoch, sim.netuid, "owner-cold")
    assert at == sim.block + 1 and sim.next_epoch() == at
    assert sim.next_epoch() == at + 7  # the schedule restarts from the triggered epoch


def test_commit_reveal_hides_weights_until_the_reveal_epoch(sim):
    v = sim.register("v")
    m = sim.register("m")
    sim.stake("v", 100)
    sim.next_epoch()  # permit
    sim.set_weights("v", {m: 1.0})
    assert sim.weights_of(v) == {}
    sim.next_epoch()  # revealed right before this epoch runs, and used by it
    assert sim.weights_of(v) == {m: 1.0}
    assert sim.neurons()[m]["incentive"] == pytest.approx(1.0)
    sim.sudo(reveal_period_epochs=2)
    sim.set_weights("v", {m: 1.0, v: 0.0001})
    sim.next_epoch()
    assert v not in sim.weights_of(v)  # still the old row: revealed one epoch later
    sim.next_epoch()
    assert v in sim.weights_of(v)


def test_a_failing_reveal_is_dropped_and_logged(sim):
    v = sim.register("v")
    m = sim.register("m")
    sim.set_weights("v", {m: 1.0})  # no permit: accepted now, refused at the reveal
    sim.next_epoch()
    assert sim.weights_of(v) == {}
    row = sim.conn.execute("SELECT ok, message FROM reveals").fetchone()
    assert row["ok"] == 0 and "no_validator_permit" in row["message"]


def test_bonds_are_cleared_when_the_permit_is_lost(tmp_path):
    sim = DevChainSim(
        tmp_path / "b.sqlite", tempo=5, weights_rate_limit=0, max_allowed_validators=1
    )
    a, b, m = sim.register("a"), sim.register("b"), sim.register("m")
    sim.stake("a", 100)
    sim.next_epoch()
    sim.set_weights("a", {m: 1.0})
    sim.next_epoch()
    sim.next_epoch()
    assert sim.bonds_row(a)
    sim.stake("b", 1000)  # b takes the only permit at the next epoch
    sim.next_epoch()
    assert sim.bonds_row(a) == {}
    dividends = [sim.neurons()[a]["dividends"]]
    for _ in range(3):
        sim.next_epoch()
        dividends.append(sim.neurons()[a]["dividends"])
    assert dividends[-1] == 0.0  # a validator without a permit earns nothing
    assert b != a


def test_owner_uid_permit_self_weight_threshold_and_withheld_incentive(tmp_path):
    sim = DevChainSim(tmp_path / "o.sqlite", tempo=5, weights_rate_limit=0, stake_threshold=50.0)
    owner = sim.register("owner-hot", "owner-cold")
    v, m = sim.register("v"), sim.register("m")
    sim.stake("v", 100)
    sim.stake("owner-hot", 10)  # under the threshold: exempt as the owner
    sim.next_epoch()
    rows = sim.neurons()
    assert rows[owner]["validator_permit"] and rows[v]["validator_permit"]
    sim.set_weights("owner-hot", {owner: 0.5, m: 0.5})  # half burned: the owner weights itself
    sim.set_weights("v", {owner: 0.5, m: 0.5})
    sim.next_epoch()
    before = sim.stake_of("owner-hot")
    sim.next_epoch()
    rows = sim.neurons()
    assert sim.weights_of(owner) == {owner: 0.5, m: 0.5}  # self-weight kept for the owner
    assert rows[owner]["incentive"] > 0.05 and rows[m]["incentive"] > 0.05
    # the owner's incentive is withheld: it is paid its dividends and the owner cut only
    assert rows[owner]["emission"] == pytest.approx(0.41 * rows[owner]["dividends"])
    assert sim.stake_of("owner-hot") - before == pytest.approx(0.18 + rows[owner]["emission"])
    assert rows[m]["emission"] == pytest.approx(0.41 * rows[m]["incentive"])


def test_emission_split_owner_cut_then_half_and_half_with_take(tmp_path):
    sim = DevChainSim(tmp_path / "e.sqlite", tempo=5, weights_rate_limit=0)
    v, m = sim.register("v"), sim.register("m")
    sim.stake("v", 100)
    sim.stake("v", 100, coldkey="nominator")
    sim.next_epoch()
    sim.set_weights("v", {m: 1.0})
    owner_before = sim.stake_of("owner-hot")
    before = {
        r["coldkey"]: r["tao"]
        for r in sim.conn.execute("SELECT coldkey, tao FROM stake WHERE hotkey='v'")
    }
    sim.next_epoch()
    rows = sim.neurons()
    assert rows[m]["emission"] == pytest.approx(0.41) and rows[v]["emission"] == pytest.approx(0.41)
    assert sim.stake_of("owner-hot") - owner_before == pytest.approx(0.18)
    stakes = {
        r["coldkey"]: r["tao"]
        for r in sim.conn.execute("SELECT coldkey, tao FROM stake WHERE hotkey='v'")
    }
    take = 0.41 * 0.18
    # the take is staked first, then the rest raises every staker's share pro rata (subtensor)
    share = before["nominator"] / (before["nominator"] + before["cold-v"] + take)
    assert stakes["cold-v"] - before["cold-v"] == pytest.approx(take + (0.41 - take) * (1 - share))
    assert stakes["nominator"] - before["nominator"] == pytest.approx((0.41 - take) * share)


def test_yuma3_is_a_subnet_switch(tmp_path):
    divs = {}
    for yuma3 in (0, 1):
        sim = DevChainSim(tmp_path / f"y{yuma3}.sqlite", tempo=5, weights_rate_limit=0, yuma3=yuma3)
        a, b = sim.register("a"), sim.register("b")
        m1, m2 = sim.register("m1"), sim.register("m2")
        sim.stake("a", 60)
        sim.stake("b", 40)
        sim.next_epoch()
        for step in range(4):
            sim.set_weights("a", {m1: 1.0, m2: 1.0})
            sim.set_weights("b", {m1: 1.0} if step < 2 else {m2: 1.0})
            sim.next_epoch()
        rows = sim.neurons()
        divs[yuma3] = (rows[a]["dividends"], rows[b]["dividends"])
        assert sum(divs[yuma3]) == pytest.approx(1.0)
    assert divs[0] != pytest.approx(divs[1], abs=1e-3)


def test_weights_committed_before_a_registration_do_not_count_for_it(tmp_path):
    """subtensor's commit-reveal column mask: a validator whose earliest pending commit
    predates j's registration has its weight on j masked."""
    incentive = {}
    for pending in (False, True):
        sim = DevChainSim(tmp_path / f"mask{pending}.sqlite", tempo=5, reveal_period_epochs=2)
        v, old = sim.register("v"), sim.register("old")
        sim.stake("v", 100)
        sim.next_epoch()
        committed_at = sim.block - 1
        new = sim.register("new")  # registered after the commit below was made
        with store.Tx(sim.conn) as c:
            c.execute("INSERT INTO weights VALUES(1, ?, ?, 0.5), (1, ?, ?, 0.5)", (v, old, v, new))
            c.execute("UPDATE neurons SET last_update=? WHERE uid=?", (sim.block + 1, v))
            if pending:
                c.execute(
                    "INSERT INTO weight_commits VALUES(1, 'v', 99, ?, '[]', '[]', 0)",
                    (committed_at,),
                )
        sim.step()
        sim.next_epoch()
        incentive[pending] = sim.neurons()[new]["incentive"]
    assert incentive[False] == pytest.approx(0.5) and incentive[True] == 0.0
