"""A late or restarted leader must not cost honest miners (issue 12, item 5).

When window w - 1's aggregate reaches the miners after its publish deadline (the leader was
slow, restarted, or could not publish and the followers applied the bootstrap rule at
end(w)), window w's honest deltas were trained one aggregate behind the validator's model and
can measure as harmful: that harm is not held against them (validator/stale.py). A leader
restarted after publishing its list applies that list, as its followers did. Miners decide
the bootstrap rule's deadline on blocks the chain confirmed, never on the clock's estimate.
"""

from __future__ import annotations

import asyncio

from template.hparams import load_hparams
from template.protocol import window_apply
from template.protocol.window_apply import AppliedWindow, WindowApplier
from template.protocol.windows import WindowClock
from template.validator.judge import Decision
from template.validator.outcomes import RejectCode, Rejection
from template.validator.score import window_values
from template.validator.stale import excuse_stale_harm, late_previous_aggregate
from template.validator.sync import ValidatorSync

HP = load_hparams("tiny")
CLOCK = WindowClock(HP.window)
HARM = Rejection(RejectCode.HARMFUL, "raises the control-page loss by 0.1 (-6.5 standard errors)")


def decisions() -> dict[int, Decision]:
    return {
        1: Decision(1, "rejected", HARM, gain=-0.1, gain_z=-6.5),
        2: Decision(2, "credited", None, gain=0.2, gain_z=4.0, evidence_z=3.0),
        3: Decision(3, "rejected", Rejection(RejectCode.HARMFUL, "non-finite loss")),
    }


def test_late_previous_aggregate_is_after_its_publish_deadline_only():
    w = 10
    due = CLOCK.publish_deadline(w - 1)
    assert late_previous_aggregate({}, w, CLOCK) is None  # unknown (before a restart): on time
    assert late_previous_aggregate({w - 1: due}, w, CLOCK) is None
    assert late_previous_aggregate({w - 1: due + 1}, w, CLOCK) == due + 1
    assert late_previous_aggregate({w - 2: due + 50}, w, CLOCK) is None  # another window's


def test_harm_in_a_window_after_a_late_aggregate_is_not_held_against_the_upload():
    w = 10
    on_time = excuse_stale_harm(w, decisions(), {w - 1: CLOCK.publish_deadline(w - 1)}, CLOCK)
    assert on_time == decisions()  # an on-time window: the harm verdict stands
    late = excuse_stale_harm(w, decisions(), {w - 1: CLOCK.end(w)}, CLOCK)
    assert late[1].verdict == "not_evaluated" and late[1].rejection is None
    assert late[1].gain == -0.1  # the measurement is kept for the log and the status
    assert late[2] == decisions()[2]  # credit stands
    assert late[3] == decisions()[3]  # a non-finite loss is not a stale base: still rejected
    values = window_values(late, {}, invalid_penalty=0.5, missing_penalty=0.1)
    assert 1 not in values  # score unchanged (no update), not 0
    assert values[2] == 1.0


def test_the_validator_records_when_each_aggregate_reached_the_followers():
    v = ValidatorSync.__new__(ValidatorSync)
    v.clock, v.landed, v.last_block, v.chain_down = CLOCK, {}, 0, False
    v.last_block = CLOCK.start(8) + 13
    v._note_landed(AppliedWindow(7, "leader", "hk", [], []))
    assert v.landed[7] == CLOCK.start(8) + 13  # a list: no earlier than we saw it
    v._note_landed(AppliedWindow(8, "bootstrap", None, [], []))
    assert v.landed[8] == CLOCK.end(9)  # the followers' deadline for the bootstrap rule
    assert late_previous_aggregate(v.landed, 9, CLOCK) == CLOCK.end(9)
    v.last_block = CLOCK.start(20)
    v._note_landed(AppliedWindow(20, "leader", "hk", [], []))
    assert 7 not in v.landed  # bounded


def test_a_leader_past_its_publish_deadline_says_so(caplog):
    v = ValidatorSync.__new__(ValidatorSync)
    v.clock, v.landed = CLOCK, {7: CLOCK.publish_deadline(7)}
    with caplog.at_level("WARNING", logger="template.validator.sync"):
        v._warn_if_late(7)
        assert caplog.records == []  # on time
        v.landed[7] = CLOCK.publish_deadline(7) + 3
        v._warn_if_late(7)
    assert "after its deadline" in caplog.text and "trained window 8 without it" in caplog.text


def test_a_restarted_leader_applies_the_list_it_published_before_the_restart(monkeypatch):
    asked = []

    async def fetch_peer_list(directory, hotkey, window, hp):
        asked.append((hotkey, window))
        return "published list"

    monkeypatch.setattr(window_apply, "fetch_peer_list", fetch_peer_list)
    a = WindowApplier.__new__(WindowApplier)
    a.hotkey, a.directory, a.hp = "me", None, HP
    assert asyncio.run(a.leader_list(5, "me", "own list in memory")) == "own list in memory"
    assert asked == []
    assert asyncio.run(a.leader_list(5, "me", None)) == "published list"  # after a restart
    assert asked == [("me", 5)]
    assert asyncio.run(a.leader_list(5, None, None)) is None


def test_miners_apply_the_bootstrap_rule_on_confirmed_blocks_only(monkeypatch):
    """During a chain outage the miner's clock estimates blocks; the dev chain killed stops
    producing them, so the estimate runs ahead and an early bootstrap would split the subnet."""
    from template.miner import sync as miner_sync
    from template.miner.clock import BlockClock

    clock = BlockClock(chain=None, block_time=0.5)
    clock.block, clock.outage = 300, True
    clock._seen_at -= 60.0  # a minute of outage: the estimate is 120 blocks ahead
    assert clock.block_now() > 400
    seen = {}

    class Applier:
        def __init__(self, *args, block, **kw):
            seen["block"] = block

    monkeypatch.setattr(miner_sync, "WindowApplier", Applier)
    monkeypatch.setattr(miner_sync, "param_shapes", lambda m: {})
    trainer = type("T", (), {"global_model": None, "applied_through": 0})()
    miner_sync.Sync(HP, None, trainer, clock)
    assert asyncio.run(seen["block"]()) == 300


def test_a_chain_outage_mid_window_raises_nothing_so_no_window_is_scored_twice():
    """The dev chain killed while the validator settles a window: the window's work must not
    raise (the loop would redo the whole window and count its scores and evidence twice)."""
    from template.chain.errors import ConnectionLostError

    class Chain:
        up = True

        async def block(self):
            if not self.up:
                raise ConnectionLostError("dev chain unreachable")
            return CLOCK.start(9) + 5

        async def block_timestamp(self, block):
            if not self.up:
                raise ConnectionLostError("dev chain unreachable")
            return 1000.0 + block

    v = ValidatorSync.__new__(ValidatorSync)
    v.clock, v.chain, v.last_block, v.chain_down = CLOCK, Chain(), 0, False
    assert asyncio.run(v._block()) == CLOCK.start(9) + 5
    v.chain.up = False
    assert asyncio.run(v._block()) == CLOCK.start(9) + 5 and v.chain_down  # the last one read
    assert asyncio.run(v._too_late_to_lead(8)) is False  # a stalled chain passed no deadline
    assert asyncio.run(v._timestamp(100)) is None  # unknown, as on the miners
    v.landed = {}  # a list applied while the chain is down: its time is unknown, so late
    v._note_landed(AppliedWindow(8, "leader", "hk", [], []))
    assert late_previous_aggregate(v.landed, 9, CLOCK) is not None
    v.chain.up = True
    assert asyncio.run(v._timestamp(100)) == 1100.0 and asyncio.run(v._block()) and not v.chain_down


def test_a_restarted_validator_catches_up_and_writes_a_status_before_its_first_window(tmp_path):
    import json
    from types import SimpleNamespace

    from template.validator.state import ValidatorState
    from template.validator.status import write_ready_status

    advanced = []

    class Chain:
        async def block(self):
            return CLOCK.upload_cutoff(11) + 1  # window 12; window 11's uploads are closed

    async def refresh():
        return None

    async def advance_to(t):
        advanced.append(t)

    applier = SimpleNamespace(in_sync=True, fingerprint_ok=True, peers_applied=2)
    v = SimpleNamespace(
        chain=Chain(),
        clock=CLOCK,
        state=ValidatorState(window=8, applied_through=7, weights={1: 1.0}),
        directory=SimpleNamespace(refresh=refresh),
        sync=SimpleNamespace(advance_to=advance_to, applier=applier),
        hotkey="hk",
        uid=0,
        scores=SimpleNamespace(scores={1: 0.5}),
        started_at=0.0,
        state_dir=tmp_path,
    )
    asyncio.run(write_ready_status(v))
    assert advanced == [10]  # what run_window(11), the loop's next window, applies first
    st = json.loads((tmp_path / "status.json").read_text())
    assert st["window"] == 8 and st["in_sync"] and st["block"] == CLOCK.upload_cutoff(11) + 1
    assert st["uploads_seen"] is None and st["rejected"] is None  # not a window report


def test_a_leader_whose_list_cannot_be_stored_retries_then_follows_the_bootstrap_rule(
    monkeypatch,
):
    """S3 killed as the leader publishes: applying a list no follower can read would split
    the subnet (they apply the bootstrap rule, and catch-up has no aggregate for the window)."""
    from types import SimpleNamespace

    from template.validator import sync as vsync

    def make(store_after: int, late_after: int):
        calls = {"publish": 0, "late": 0, "lead": [], "bootstrap": []}

        async def publish(bucket, doc, key):
            calls["publish"] += 1
            return calls["publish"] > store_after

        async def too_late(window):
            calls["late"] += 1
            return calls["late"] > late_after

        async def lead(window, peers):
            calls["lead"].append(window)

        async def apply_window(window, **how):
            calls["bootstrap"].append((window, dict(v.own_lists)))

        async def block():
            return 0

        async def published_before(window):
            return None  # no list of this window was stored before

        monkeypatch.setattr(vsync, "publish_peer_list", publish)
        v = ValidatorSync.__new__(ValidatorSync)
        v.key = SimpleNamespace(ss58_address="me")
        v.bucket, v.follow_wait, v.own_lists, v.landed = None, 30.0, {}, {}
        v.chain_down, v.clock = False, CLOCK
        v.applier = SimpleNamespace(poll_s=lambda: 0.01)
        v.global_model = SimpleNamespace(applied_through=6)  # window 7 not applied yet
        v._too_late_to_lead, v._lead, v.apply_window, v._block = too_late, lead, apply_window, block
        v._list_published_before = published_before
        return v, calls

    doc = SimpleNamespace(peers=[(1, "a")])
    v, calls = make(store_after=2, late_after=10)  # stored on the second retry
    asyncio.run(v.settle(7, doc, "me"))
    assert calls["publish"] == 3 and calls["lead"] == [7] and not calls["bootstrap"]
    v, calls = make(store_after=99, late_after=3)  # never stored before the deadline
    asyncio.run(v.settle(7, doc, "me"))
    assert calls["lead"] == [] and calls["bootstrap"] == [(7, {})]  # not its own list
    assert v.own_lists == {}
