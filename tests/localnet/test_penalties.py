"""The chaos run's accounting: honest_penalised (penalties.py) and recovery on status writes."""

from __future__ import annotations

from types import SimpleNamespace

from template.localnet.chaos import ChaosConfig, Fault, judge
from template.localnet.monitor import Snapshot, Tracker
from template.localnet.penalties import count_penalties


def _tracker() -> Tracker:
    return Tracker("validator-0", {"miner-0": 1, "miner-1": 2}, ["validator-0"], t0=0.0)


def _lead(w: int, decisions: dict, rejected: dict, seen: int) -> dict:
    return {
        "window": w,
        "block": 20 * w + 30,
        "in_sync": True,
        "uploads_seen": seen,
        "decisions": decisions,
        "rejected": rejected,
    }


def _feed(tr: Tracker, w: int, lead: dict, miners: dict) -> None:
    tr.update(Snapshot({"validator-0": lead, **miners}, 20 * w + 30, {}, 1, 0))


def _miner(w: int, block: int, in_sync: bool = True, loss: float | None = 3.0) -> dict:
    return {"window": w, "block": block, "in_sync": in_sync, "loss": loss}


def test_outages_excuse_lateness_not_harm_and_a_killed_miner_is_excused_while_down():
    tr = _tracker()
    both = {"miner-0": _miner(1, 40), "miner-1": _miner(1, 40)}
    _feed(tr, 1, _lead(1, {"1": "credited", "2": "unproven"}, {}, 2), both)
    # window 2: a fault (S3 paused) -> uid 1 late, uid 2 missing: excused
    _feed(tr, 2, _lead(2, {}, {"1": "late: first seen after the cut-off"}, 1), both)
    # window 5: no fault near; uid 2 rejected harmful, uid 1 missing: both penalised
    _feed(tr, 5, _lead(5, {"2": "rejected"}, {"2": "harmful: raises the loss"}, 1), both)
    # window 7-8: miner-1 (uid 2) was killed in window 7 and ran again in window 8
    _feed(tr, 7, _lead(7, {"1": "credited"}, {}, 1), both)
    _feed(tr, 8, _lead(8, {"1": "credited"}, {}, 1), both)
    _feed(tr, 9, _lead(9, {"1": "credited"}, {}, 1), both)  # uid 2 still missing: penalised
    pen = count_penalties(tr, [2, 7], {"miner-1": [(7, 8)]})
    got = {(p["window"], p["uid"], p["why"].split(":")[0]) for p in pen.penalised}
    assert got == {(5, "2", "harmful"), (5, "1", "missing"), (9, "2", "missing")}
    ex = {(p["window"], p["uid"], p["why"].split(":")[0]) for p in pen.excused}
    assert ex == {(2, "1", "late"), (2, "2", "missing"), (7, "2", "missing"), (8, "2", "missing")}
    assert len(pen.rejected) == 1 and len(pen.missing) == 2


def test_a_harm_verdict_is_penalised_even_in_a_fault_window():
    tr = _tracker()
    both = {"miner-0": _miner(3, 70), "miner-1": _miner(3, 70)}
    _feed(tr, 3, _lead(3, {"1": "rejected", "2": "credited"}, {"1": "harmful: x"}, 2), both)
    pen = count_penalties(tr, [3], {})
    assert [p["uid"] for p in pen.penalised] == ["1"] and not pen.excused


def test_recovery_counts_from_the_restart_and_a_start_up_status_counts():
    """A restarted miner writes a status at start-up (about the window it last finished): it
    must count for recovery and must not erase that window's recorded loss."""
    tr = _tracker()
    lead = _lead(3, {"1": "credited", "2": "credited"}, {}, 2)
    _feed(tr, 3, lead, {"miner-0": _miner(3, 70), "miner-1": _miner(3, 70, loss=2.5)})
    # miner-1 killed at block 75 (window 3), restarted at block 78, ready at block 101
    start_up = _miner(3, 101, loss=None)
    _feed(tr, 3, lead, {"miner-0": _miner(3, 70), "miner-1": start_up})
    assert tr.history["miner-1"][3]["loss"] == 2.5  # not erased by the start-up status
    _feed(tr, 4, _lead(4, {"1": "credited"}, {}, 1), {"miner-0": _miner(4, 90)})
    fault = Fault("kill", "miner-1", window=3, block=75)
    cfg = ChaosConfig([fault], faults_done=[fault])
    run = SimpleNamespace(
        tracker=tr,
        start_blocks={"miner-1": [0, 78]},
        children=SimpleNamespace(by_name=lambda n: None),
    )
    out = judge(run, {"stop_reason": "windows", "in_sync": True, "supervision": {}}, cfg)
    assert out["recovery_windows"]["kill:miner-1@3"]["miner-1"] == 2  # block 78 -> 101
    assert out["startup_windows"] == {"miner-1@3": 2}
    assert out["recovery_windows"]["kill:miner-1@3"]["miner-0"] == 1  # block 75 -> 90
    assert out["honest_penalised"] == 0, out  # uid 2 missing in window 4: it was down
    assert out["ok"]
    late = _miner(5, 130, in_sync=False)  # a node out of sync never counts as recovered
    tr.sync_log["miner-1"] = [(b, False) for b, _ in tr.sync_log["miner-1"]] + [(130, False)]
    out = judge(run, {"stop_reason": "windows", "in_sync": True, "supervision": {}}, cfg)
    assert out["recovery_windows"]["kill:miner-1@3"]["miner-1"] is None and not out["ok"]
    assert late["in_sync"] is False


def test_a_fresh_miners_start_up_status_does_not_expect_uploads_before_its_first_window():
    tr = _tracker()
    fresh = {"miner-0": _miner(-1, 5), "miner-1": _miner(-1, 5)}  # start-up, nothing trained
    _feed(tr, 0, _lead(0, {}, {}, 0), fresh)
    both = {"miner-0": _miner(1, 45), "miner-1": _miner(1, 45)}
    _feed(tr, 1, _lead(1, {"1": "unproven", "2": "unproven"}, {}, 2), both)
    assert tr.first_status_window["miner-0"] == 1 and tr.first_status_window["miner-1"] == 1
    assert count_penalties(tr, [], {}).penalised == []
    assert [b for b, _ in tr.sync_log["miner-0"]] == [5, 45]  # the start-up status is logged


def test_a_validators_start_up_status_counts_for_recovery_but_makes_no_window_record():
    tr = _tracker()
    both = {"miner-0": _miner(3, 70), "miner-1": _miner(3, 70)}
    _feed(tr, 3, _lead(3, {"1": "credited"}, {"2": "harmful: x"}, 2), both)
    ready = {**_lead(3, None, None, None), "block": 95, "is_leader": None, "leader": None}
    tr.update(Snapshot({"validator-0": ready, **both}, 95, {}, 1, 0))
    assert tr.windows[3].rejected == {"2": "harmful: x"} and tr.windows[3].uploads_seen == 2
    assert tr.history["validator-0"][3]["rejected"] == {"2": "harmful: x"}  # not erased
    assert tr.sync_log["validator-0"][-1] == (95, True)
    assert len(count_penalties(tr, [], {}).penalised) == 1
