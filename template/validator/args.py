"""Validator flags (on top of template/node/args.py) and the typed config they fill.

Each ``ValidatorConfig`` field holds its flag's help and rule once (template/node/flags.py);
``--eval.lr-scale`` is field ``eval_lr_scale``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from template.node.args import add_node_args, check_node_args
from template.node.flags import (
    NON_NEGATIVE,
    POSITIVE,
    ConfigError,
    add_settings,
    at_least,
    between,
    setting,
    settings_from_args,
)

_PREFIX = "v_"  # parsed flags land in args.v_<field>


@dataclass(frozen=True)
class ValidatorConfig:
    """Validator-local settings: they change how this node measures, never the shared model."""

    eval_lr_scale: float = setting(
        1.0,
        "An upload is applied as theta - scale * outer lr / n * delta to evaluate it (n: the "
        "window's uploads, at most peers_per_window: its weight in the outer step; a delta "
        "above the median norm of the last window's peers counts at that norm, as the outer "
        "step clips it).",
        POSITIVE,
    )
    eval_own_seqs: int = setting(
        36,
        "Sequences measured per upload from its own claimed pages (spread over the pages). The "
        "evidence per window grows with the square root of own + control sequences.",
        at_least(2),
    )
    eval_control_seqs: int = setting(
        36,
        "Control sequences per upload from validator-drawn training pages nobody claimed.",
        at_least(2),
    )
    eval_control_pool: int = setting(
        3,
        "Times --eval.control-seqs in the window's control pool; each upload is measured on "
        "its own random part of it, so uploads trained alike do not share one sample's luck "
        "(1: one sample shared by every upload; docs/scoring.md section 4).",
        at_least(1),
    )
    eval_boost: int = setting(
        2,
        "Times the own and control sequences measured for an undecided upload: its uid's "
        "evidence leans towards training but is not yet paid in full (1: never). More "
        "evidence where a verdict is open lets a lower --judge.alpha keep honest miners' "
        "proof as fast (docs/scoring.md section 5).",
        at_least(1),
    )
    eval_status_pages: int = setting(
        4, "Held-out pages of the fixed sample behind the status heldout_loss.", at_least(1)
    )
    judge_alpha: float = setting(
        0.01,
        "False-positive rate per window of the training-evidence test (one-sided): an upload "
        "earns and can be a peer only while its uid's accumulated evidence passes it. Lower "
        "values give non-trainers fewer chance credits and honest miners with weak evidence a "
        "slower proof (the trade-off: docs/scoring.md section 5).",
        between(0, 0.5, lo_open=True, hi_open=True),
    )
    judge_memory: float = setting(
        0.95,
        "Discount per window of age of a uid's training evidence (1: never forget).",
        between(0, 1, lo_open=True),
    )
    judge_harm_z: float = setting(
        3.0,
        "Standard errors by which an upload must raise the control-page loss to be harmful.",
        POSITIVE,
    )
    judge_lean_z: float = setting(
        1.0,
        "Accumulated training evidence an unproven upload needs to be a peer in a window "
        "without a credited upload, and a uid needs to be in the measurement's reference while "
        "fewer than two are proven (1.0: a non-trainer reaches it in about one window in six).",
        NON_NEGATIVE,
    )
    eval_max_uploads: int = setting(
        0, "Uploads evaluated per window (0: limited by --eval.time-budget only).", NON_NEGATIVE
    )
    eval_time_budget: float = setting(
        0.0,
        "Seconds of evaluation per window (0: no limit); others wait their turn, and boosted "
        "measurements (--eval.boost) only run as far as the time left pays for them.",
        NON_NEGATIVE,
    )
    eval_meet_deadline: bool = setting(
        True,
        "As the leader, measure only the uploads that fit before the peer list is due "
        "(boosted ones last; --eval.max-wait holds unless measuring its minimum would make "
        "the list too late to publish): a late list makes the miners train from an old "
        "model, and one past the followers' wait makes every node apply the bootstrap rule, "
        'harmful uploads included (docs/scoring.md, "A slow leader").',
    )
    eval_max_wait: int = setting(
        4,
        "Most windows a uid that uploads every window waits between evaluations: the upload "
        "count yields to this over --eval.time-budget and --eval.max-uploads (0: no bound).",
        NON_NEGATIVE,
    )
    gather_concurrency: int = setting(16, "Parallel downloads.", at_least(1))
    gather_time_budget: float = setting(
        60.0,
        "Seconds allowed to download one window's uploads; the wait for their seal keys"
        " (until the reveal deadline) has a budget of its own of the same length.",
        POSITIVE,
    )
    gather_clock_skew: float = setting(
        2.0, "Seconds of clock difference tolerated between buckets and the chain.", NON_NEGATIVE
    )
    score_alpha: float = setting(
        0.3, "Weight of the newest window in the score moving average.", between(0, 1, lo_open=True)
    )
    score_missing_penalty: float = setting(
        0.25, "Penalty (window value -p) for a missing upload.", NON_NEGATIVE
    )
    score_invalid_penalty: float = setting(
        1.0, "Penalty (window value -p) for an upload that fails a check.", NON_NEGATIVE
    )
    score_rate_memory: int = setting(
        8,
        "Windows for which the full claims' rate of the latest window in which a full claim "
        "earned caps the pay of partial claims in windows where no full claim earns (0: only "
        "the window's own full claims cap them).",
        NON_NEGATIVE,
    )
    copy_overlap: float = setting(
        0.7,
        "Index overlap (shared / the smaller index set) at which two uploads of a window, or an "
        "upload and another uid's upload of the last window, are linked as near-duplicates "
        "(measured: honest pairs <= 0.35, a 20%-swapped copy 0.80).",
        between(0, 1, lo_open=True),
    )
    copy_similarity: float = setting(
        0.8,
        "Value cosine on the shared indices at which linked uploads count as near-duplicates.",
        between(-1, 1),
    )
    freerider_min_norm: float = setting(
        0.05,
        "Uploads whose norm is below this share of the window median are tiny.",
        between(0, 1, hi_open=True),
    )
    replay_windows: int = setting(
        8, "Windows of upload digests remembered to catch replays.", at_least(1)
    )
    weights_every: int = setting(
        1, "Set weights every N windows (within the chain's rate limit).", at_least(1)
    )
    leader_follow_wait: float = setting(
        30.0, "Seconds a non-leader waits for the leader's peer list.", NON_NEGATIVE
    )


def add_validator_args(parser: argparse.ArgumentParser) -> None:
    """Flags such as --eval.lr-scale, --score.alpha, --weights.every (defaults: ValidatorConfig)."""
    add_settings(parser, ValidatorConfig, "validator", _PREFIX)


def config_from_args(args: argparse.Namespace) -> ValidatorConfig:
    """The checked config; ConfigError (a ValueError) states the flag, its rule and the value."""
    return settings_from_args(ValidatorConfig, args, _PREFIX)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed-validator",
        description=(
            "Gather the miners' uploads each window, check and measure them, score the miners, "
            "set weights and (as leader) publish the documents that keep the network in sync."
        ),
    )
    add_node_args(parser, "validator")
    add_validator_args(parser)
    return parser


def check_validator_args(args: argparse.Namespace) -> ValidatorConfig:
    """All cheap checks of the validator's flags (no heavy imports)."""
    check_node_args(args)
    return config_from_args(args)


__all__ = ["ConfigError", "ValidatorConfig", "build_parser", "config_from_args"]
