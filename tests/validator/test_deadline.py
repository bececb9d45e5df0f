"""The leader measures only what fits before its peer list is due (validator/deadline.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace

import pytest

from template.chain.errors import ConnectionLostError
from template.hparams import load_hparams
from template.protocol.windows import WindowClock
from template.validator.args import ValidatorConfig
from template.validator.deadline import (
    TimeLeft,
    leader_deadlines,
    measurements_stop,
    seconds_before,
    seconds_per_block,
    time_budget_within,
)
from template.validator.judge import Evidence, JudgeRules
from template.validator.loop import Validator, each_in_worker
from template.validator.plan import plan_before_deadline, plan_evaluation
from template.validator.sampling import longest_waiting_first, seconds_average
from template.validator.state import ValidatorState
from template.validator.sync import LATE_MARGIN_BLOCKS

CLOCK = WindowClock(load_hparams("tiny").window)


def test_the_leader_has_two_deadlines_on_time_and_at_all():
    on_time, at_all = leader_deadlines(CLOCK, 7)
    assert on_time == CLOCK.publish_deadline(7)
    assert at_all == CLOCK.end(8) - LATE_MARGIN_BLOCKS
    assert CLOCK.upload_cutoff(7) < on_time < at_all < CLOCK.end(8)


def test_the_block_time_comes_from_the_chains_timestamps():
    assert seconds_per_block(100, 1000.0, 125, 1030.0) == pytest.approx(1.2)
    assert seconds_per_block(100, 1000.0, 100, 1000.0) is None  # one block
    assert seconds_per_block(100, 1000.0, 125, 1000.0) is None  # a clock that did not move


def test_the_time_left_is_to_the_first_deadline_that_leaves_any():
    dues = (113, 117)
    assert seconds_before(108, dues, 2.0) == pytest.approx(8.0)  # blocks 109-112
    assert seconds_before(112, dues, 2.0) == pytest.approx(8.0)  # too late on time: at all
    assert seconds_before(116, dues, 2.0) is None  # past both: nothing left to save
    assert seconds_before(108, dues, None) is None  # block time unknown: no limit


def test_the_deadline_cuts_the_configured_budget_never_raises_it():
    assert time_budget_within(0.0, None) == 0.0  # neither: no limit
    assert time_budget_within(0.0, 4.0) == 4.0
    assert time_budget_within(6.0, 4.0) == 4.0
    assert time_budget_within(3.0, 4.0) == 3.0
    assert time_budget_within(3.0, None) == 3.0


def _planner(**cfg):
    v = SimpleNamespace(
        cfg=ValidatorConfig(**cfg),
        judge_rules=JudgeRules(),
        evidence=Evidence(),
        state=ValidatorState(eval_seconds=1.0),
    )
    v._plan_inputs = lambda: Validator._plan_inputs(v)
    return v, lambda uids, w, left=None: plan_evaluation(
        uids, w, seconds_left=left, **v._plan_inputs()
    )


def test_a_leader_short_of_time_measures_fewer_uploads_and_boosts_none():
    uids = list(range(1, 9))
    v, plan = _planner(eval_max_wait=4, eval_boost=2)
    v.state.last_evaluated = {u: u - 20 for u in uids}  # uid 1 waited longest, then 2, ...
    for uid in uids:
        v.evidence.s[uid], v.evidence.v[uid] = 1.5, 1.0  # undecided: boosted when time allows
    assert plan(uids, 3) == (uids, set(uids))  # no deadline: all, each boosted
    assert plan(uids, 3, 20.0) == (uids, set(uids))  # time for all of it
    chosen, boosted = plan(uids, 3, 11.0)  # 8 once, then 3 more measurements' time
    assert chosen == uids and boosted == {1, 2, 3}
    assert plan(uids, 3, 5.0) == ([1, 2, 3, 4, 5], set())  # the longest-waiting first
    # never fewer than --eval.max-wait allows: 8 uids within 4 windows
    assert plan(uids, 3, 0.5) == ([1, 2], set())
    v.cfg = dataclasses.replace(v.cfg, eval_time_budget=3.0)
    assert plan(uids, 3, 5.0) == ([1, 2, 3], set())  # the tighter budget wins


class _Chain:
    def __init__(self, block: int, per_block: float = 1.0, down: bool = False):
        self.at, self.per_block, self.down = block, per_block, down
        self.stamps_read: list[int] = []

    async def block(self) -> int:
        if self.down:
            raise ConnectionLostError("dev chain unreachable")
        return self.at

    async def block_timestamp(self, n: int) -> float:
        if self.down:
            raise ConnectionLostError("dev chain unreachable")
        self.stamps_read.append(n)
        return 5000.0 + n * self.per_block


def _validator(chain: _Chain, **cfg) -> SimpleNamespace:
    v = SimpleNamespace(cfg=ValidatorConfig(**cfg), clock=CLOCK, chain=chain, _stamps={})
    v._past_block_timestamp = lambda b: Validator._past_block_timestamp(v, b)
    return v


def _left(chain: _Chain, is_leader: bool = True, **cfg) -> TimeLeft:
    return asyncio.run(Validator._time_before_list_due(_validator(chain, **cfg), 7, is_leader))


def test_only_the_leader_counts_its_seconds_before_the_list_is_due():
    at = CLOCK.upload_cutoff(7) + 2
    at_all = CLOCK.end(8) - LATE_MARGIN_BLOCKS
    left = _left(_Chain(at, per_block=1.5))
    assert left.plan == pytest.approx((CLOCK.publish_deadline(7) - at - 1) * 1.5)
    assert left.stop == pytest.approx((at_all - at - 1) * 1.5)
    assert _left(_Chain(at), is_leader=False) == TimeLeft()  # a follower changes no model
    assert _left(_Chain(at), eval_meet_deadline=False) == TimeLeft()  # switched off
    assert _left(_Chain(at, down=True)) == TimeLeft()  # no block time known: no limit
    late = CLOCK.publish_deadline(7)  # too late for the miners, not for the followers
    assert _left(_Chain(late)) == TimeLeft(at_all - late - 1.0, at_all - late - 1.0)
    assert _left(_Chain(at_all)) == TimeLeft()  # too late for anything: nothing to save


def test_the_plan_leaves_room_for_the_windows_work_besides_the_measurements():
    uids = list(range(1, 9))
    v, _ = _planner(eval_max_wait=4, eval_boost=2)
    v.state.last_evaluated = {u: u - 20 for u in uids}  # uid 1 waited longest, then 2, ...

    def plan(left: TimeLeft, overhead: float | None) -> list[int]:
        return plan_before_deadline(uids, 3, left, overhead, **v._plan_inputs())[0]

    assert plan(TimeLeft(5.0, 9.0), 0.0) == [1, 2, 3, 4, 5]
    assert plan(TimeLeft(5.0, 9.0), None) == [1, 2, 3, 4, 5]  # none averaged yet: nothing off
    assert plan(TimeLeft(5.0, 9.0), 2.0) == [1, 2, 3]  # three evaluations' time left
    # none left: the max wait's minimum (8 uids within 4 windows)
    assert plan(TimeLeft(5.0, 9.0), 9.0) == [1, 2]
    assert plan(TimeLeft(), 9.0) == uids  # no deadline


def test_the_step_check_takes_the_boosts_time_but_never_a_measurements():
    uids = list(range(1, 9))
    v, _ = _planner(eval_max_wait=4, eval_boost=2)
    v.state.last_evaluated = {u: u - 20 for u in uids}
    for uid in uids:
        v.evidence.s[uid], v.evidence.v[uid] = 1.5, 1.0  # undecided: boosted when time allows

    def plan(left: TimeLeft, check: float | None):
        return plan_before_deadline(uids, 3, left, 0.0, check, **v._plan_inputs())

    # 8 measurements of 1 s and 3 boosts fit in 11 s; the check's second costs one boost
    assert plan(TimeLeft(11.0, 15.0), None) == (uids, {1, 2, 3}, True)
    assert plan(TimeLeft(11.0, 15.0), 1.0) == (uids, {1, 2}, True)
    # in 8.5 s it would cost the eighth measurement: all 8 are measured, the step unchecked
    assert plan(TimeLeft(8.5, 15.0), 1.0) == (uids, set(), False)
    assert plan(TimeLeft(8.5, 15.0), 0.4) == (uids, set(), True)  # it fits beside them
    assert plan(TimeLeft(), 1.0) == (uids, set(uids), True)  # no deadline: time for all


def test_the_windows_other_work_is_averaged_from_its_first_figure():
    first = seconds_average(None, 3.0)
    assert first == 3.0  # none before it: not averaged with 0
    assert seconds_average(first, 8.0) == pytest.approx(4.0)  # 0.8 x 3 + 0.2 x 8
    assert seconds_average(4.0, 4.0) == pytest.approx(4.0)
    assert seconds_average(4.0, 0.0, weight=0.5) == pytest.approx(2.0)


def test_measurements_stop_at_the_last_moment_but_one_is_always_made():
    ticks = iter(range(100))

    def measured():
        for uid in (4, 2, 9):
            next(ticks)
            yield uid

    assert asyncio.run(each_in_worker(measured())) == [4, 2, 9]
    assert asyncio.run(each_in_worker(measured(), stop_at=time.monotonic())) == [4]
    assert asyncio.run(each_in_worker(measured(), stop_at=time.monotonic() + 60)) == [4, 2, 9]


def test_a_validator_that_never_timed_a_measurement_stops_when_its_list_is_due_on_time():
    left = TimeLeft(plan=5.0, stop=9.0)
    # timed before: the plan counted what fits on time; only the last moment stops it
    assert measurements_stop(100.0, left, 1.0, 2.0) == pytest.approx(109.0)
    # never timed (a new validator's first window): its plan took every upload, so it stops
    # at the on-time deadline, less the window's other work
    assert measurements_stop(100.0, left, None, None) == pytest.approx(105.0)
    assert measurements_stop(100.0, left, None, 2.0) == pytest.approx(103.0)
    assert measurements_stop(100.0, left, None, 7.0) == pytest.approx(100.0)  # one is still made
    assert measurements_stop(100.0, TimeLeft(), None, None) is None  # no deadline: no limit
    assert measurements_stop(100.0, TimeLeft(), 1.0, None) is None


def test_uploads_are_measured_longest_waiting_first():
    last = {1: 5, 2: 3, 3: 5, 4: 6}  # uid 7 never evaluated
    order = longest_waiting_first([1, 2, 3, 4, 7], last, 8)
    assert order[:2] == [7, 2] and set(order[2:4]) == {1, 3} and order[4] == 4


def test_the_window_block_timestamps_are_read_from_the_chain_once():
    chain = _Chain(CLOCK.upload_cutoff(7) + 2)
    v = _validator(chain)
    first = asyncio.run(Validator._time_before_list_due(v, 7, True))
    assert asyncio.run(Validator._time_before_list_due(v, 7, True)) == first
    assert sorted(chain.stamps_read) == [CLOCK.start(7), CLOCK.upload_cutoff(7)]
    asyncio.run(Validator._time_before_list_due(v, 30, True))  # much later: old ones dropped
    assert set(v._stamps) == {CLOCK.start(30), CLOCK.upload_cutoff(30)}
