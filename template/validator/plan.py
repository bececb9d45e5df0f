"""Which of a window's standing uploads the validator measures, and which on more sequences.

The fair rotation (sampling.py) picks as many as ``--eval.max-uploads`` and
``--eval.time-budget`` allow, the budget cut to the leader's seconds before its peer list is due
(deadline.py), but never so few that a uid waits more than ``--eval.max-wait`` windows. Of the
chosen, those whose verdict is open (``JudgeRules.undecided``) are measured on
``--eval.boost`` times the sequences, nearest the bar first, as far as the time left pays for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from .args import ValidatorConfig
from .deadline import TimeLeft, time_budget_within
from .judge import JudgeRules
from .sampling import boost_room, boosts_within, choose_for_evaluation, evaluation_budget

logger = logging.getLogger(__name__)


def plan_evaluation(
    uids: Sequence[int],
    window: int,
    *,
    cfg: ValidatorConfig,
    rules: JudgeRules,
    evidence_z: Callable[[int], float],
    last_evaluated: Mapping[int, int],
    seconds_per_eval: float | None,
    seconds_left: float | None = None,
) -> tuple[list[int], set[int]]:
    """(the uids measured this window, those of them measured on more sequences), within
    ``seconds_left`` (None: no deadline) at ``seconds_per_eval`` a measurement (None: never
    timed, no time limit)."""
    time_budget = time_budget_within(cfg.eval_time_budget, seconds_left)
    budget = evaluation_budget(
        cfg.eval_max_uploads,
        time_budget,
        seconds_per_eval,
        uploads=len(uids),
        max_wait=cfg.eval_max_wait,
    )
    chosen = choose_for_evaluation(uids, last_evaluated, budget, window)
    if cfg.eval_boost <= 1:
        return chosen, set()
    undecided = sorted(
        (u for u in chosen if rules.undecided(evidence_z(u))),
        key=lambda u: abs(evidence_z(u) - rules.z_proof),
    )
    room = boost_room(time_budget, seconds_per_eval, len(chosen))
    return chosen, set(boosts_within(undecided, room, cfg.eval_boost))


def plan_before_deadline(
    uids: Sequence[int],
    window: int,
    left: TimeLeft,
    overhead: float | None,
    check: float | None = None,
    **plan,
) -> tuple[list[int], set[int], bool]:
    """``plan_evaluation`` (given ``plan``, its keyword arguments) within the leader's time
    ``left``, less the window's work besides the measurements themselves (``overhead``: a
    moving average, None before the first window); logged when that cut it.

    ``check``: the seconds of the leader's step check (step_check.py), also reserved, but
    only out of the boosts' time: when reserving it would measure fewer uploads, the plan is
    made without it. The third value says whether the check has its time."""
    if left.plan is None:
        return *plan_evaluation(uids, window, **plan), True
    seconds = left.plan - (overhead or 0.0)
    chosen, boosted = plan_evaluation(uids, window, seconds_left=seconds - (check or 0.0), **plan)
    checked = True
    if check:
        without = plan_evaluation(uids, window, seconds_left=seconds, **plan)
        if len(without[0]) > len(chosen):
            (chosen, boosted), checked = without, False
    unlimited, all_boosted = plan_evaluation(uids, window, **plan)
    if (chosen, boosted) != (unlimited, all_boosted):
        logger.info(
            "window %d: %.1f s before the peer list is due: measuring %d of %d uploads "
            "(%d of %d on more sequences); the rest wait their turn",
            window,
            left.plan,
            len(chosen),
            len(unlimited),
            len(boosted),
            len(all_boosted),
        )
    return chosen, boosted, checked
