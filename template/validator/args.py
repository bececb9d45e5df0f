"""Validator flags (on top of template/node/args.py) and the typed config they fill."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ValidatorConfig:
    """Validator-local settings: they change how this node measures, never the shared model."""

    eval_lr_scale: float = 1.0  # an upload is evaluated as theta - scale * outer.lr / n * delta
    eval_assigned_pages: int = 2  # claimed pages sampled per upload
    eval_heldout_pages: int = 2  # held-out pages per window (shared by every upload)
    eval_status_pages: int = 4  # fixed held-out sample for the status heldout_loss
    eval_page_margin: float = -0.1  # average relative excess of assigned over held-out gain
    eval_page_min_windows: int = 4  # evaluations of a uid before the page proof is enforced
    eval_harm_tolerance: float = 0.01  # held-out loss may rise this share before "harmful"
    eval_max_uploads: int = 0  # uploads evaluated per window (0: as many as the time budget allows)
    eval_time_budget: float = 0.0  # seconds of evaluation per window (0: no limit)
    gather_concurrency: int = 16
    gather_time_budget: float = 60.0  # seconds to download a window's uploads
    gather_clock_skew: float = 2.0  # seconds of bucket/chain clock difference tolerated
    score_alpha: float = 0.3  # EMA weight of the newest window
    score_missing_penalty: float = 0.25  # window value of a missing upload (negative)
    score_invalid_penalty: float = 1.0  # window value of an invalid upload (negative)
    copy_overlap: float = 0.9  # top-k index overlap at or above which two uploads are copies
    copy_similarity: float = 0.9  # ... when their values on shared indices also agree this much
    freerider_min_norm: float = 0.05  # uploads below this share of the window's median norm: tiny
    replay_windows: int = 8  # windows of upload digests remembered
    weights_every: int = 1  # set weights every N windows (and never inside the rate limit)
    leader_follow_wait: float = 30.0  # seconds a follower waits for the leader's peer list


_FLAGS = {
    "eval_lr_scale": "An upload is applied as theta - scale * outer lr / n * delta to evaluate it (n: the window's uploads, at most peers_per_window: its weight in the outer step).",
    "eval_assigned_pages": "Claimed pages evaluated per upload.",
    "eval_heldout_pages": "Held-out pages per window (all uploads are measured on the same ones).",
    "eval_status_pages": "Held-out pages of the fixed sample behind the status heldout_loss.",
    "eval_page_margin": "Assigned pages must improve more than held-out pages by this relative margin (moving average).",
    "eval_page_min_windows": "Evaluations of a uid before the page proof is enforced (early on, every page improves alike).",
    "eval_harm_tolerance": "An upload is harmful (invalid) when it raises the held-out loss by more than this share.",
    "eval_max_uploads": "Uploads evaluated per window (0: limited by --eval.time-budget only).",
    "eval_time_budget": "Seconds of evaluation per window (0: no limit); others wait their turn.",
    "gather_concurrency": "Parallel downloads.",
    "gather_time_budget": "Seconds allowed to download one window's uploads.",
    "gather_clock_skew": "Seconds of clock difference tolerated between buckets and the chain.",
    "score_alpha": "Weight of the newest window in the score moving average.",
    "score_missing_penalty": "Penalty (window value -p) for a missing upload.",
    "score_invalid_penalty": "Penalty (window value -p) for an upload that fails a check.",
    "copy_overlap": "Index overlap at which two uploads of a window count as copies.",
    "copy_similarity": "Value similarity on shared indices at which they count as copies.",
    "freerider_min_norm": "Uploads whose norm is below this share of the window median are tiny.",
    "replay_windows": "Windows of upload digests remembered to catch replays.",
    "weights_every": "Set weights every N windows (within the chain's rate limit).",
    "leader_follow_wait": "Seconds a non-leader waits for the leader's peer list.",
}


def _flag(name: str) -> str:
    group, _, rest = name.partition("_")
    return f"--{group}.{rest.replace('_', '-')}"


def add_validator_args(parser: argparse.ArgumentParser) -> None:
    """Flags such as --eval.lr-scale, --score.alpha, --weights.every (defaults: ValidatorConfig)."""
    g = parser.add_argument_group("validator")
    for f in fields(ValidatorConfig):
        g.add_argument(
            _flag(f.name),
            dest=f"v_{f.name}",
            type=type(f.default),
            default=f.default,
            help=f"{_FLAGS[f.name]} (default {f.default})",
        )


def config_from_args(args: argparse.Namespace) -> ValidatorConfig:
    cfg = ValidatorConfig(**{f.name: getattr(args, f"v_{f.name}") for f in fields(ValidatorConfig)})
    validate_config(cfg)
    return cfg


def validate_config(cfg: ValidatorConfig) -> None:
    """ValueError naming the flag when a value cannot work."""
    checks = [
        (cfg.eval_lr_scale > 0, "eval_lr_scale"),
        (cfg.eval_assigned_pages >= 1, "eval_assigned_pages"),
        (cfg.eval_heldout_pages >= 1, "eval_heldout_pages"),
        (cfg.eval_status_pages >= 1, "eval_status_pages"),
        (-1 < cfg.eval_page_margin < 5, "eval_page_margin"),
        (cfg.eval_page_min_windows >= 1, "eval_page_min_windows"),
        (cfg.eval_harm_tolerance >= 0, "eval_harm_tolerance"),
        (cfg.eval_max_uploads >= 0, "eval_max_uploads"),
        (cfg.eval_time_budget >= 0, "eval_time_budget"),
        (cfg.gather_concurrency >= 1, "gather_concurrency"),
        (cfg.gather_time_budget > 0, "gather_time_budget"),
        (cfg.gather_clock_skew >= 0, "gather_clock_skew"),
        (0 < cfg.score_alpha <= 1, "score_alpha"),
        (
            cfg.score_missing_penalty >= 0 and cfg.score_invalid_penalty >= 0,
            "score_missing_penalty/score_invalid_penalty",
        ),
        (0 < cfg.copy_overlap <= 1 and -1 <= cfg.copy_similarity <= 1, "copy_overlap"),
        (0 <= cfg.freerider_min_norm < 1, "freerider_min_norm"),
        (cfg.replay_windows >= 1, "replay_windows"),
        (cfg.weights_every >= 1, "weights_every"),
        (cfg.leader_follow_wait >= 0, "leader_follow_wait"),
    ]
    for ok, name in checks:
        if not ok:
            raise ValueError(f"{_flag(name.split('/')[0])} has an invalid value")
