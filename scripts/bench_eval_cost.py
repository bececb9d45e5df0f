"""Evaluation cost per upload against the miner's training cost per upload, by preset.

    python scripts/bench_eval_cost.py --presets tiny,150m --json

Times, on this machine, a forward pass of a few sequences (what the validator's ``Measurer``
runs) and a training step on the same number of sequences (forward, backward and AdamW: what
a miner runs), at each preset's sequence length and model size, then scales both to one
upload: the validator measures ``3 x own + 2 x control`` sequences per upload (own ones
before, after the leave-one-out reference and after the upload; control ones after both) plus
the window's shared control "before" losses; the miner trains ``H x batch_size`` sequences.
The ratio of the two is the issue's "evaluation cost per upload over the miner's training
cost" (target: at most 0.10). Random tokens stand in for text: the cost of a pass does not
depend on them. Passes run on the preset's batch (at most ``--seqs``), so the optimizer step
is shared as in a real step; with fewer sequences than the batch (large presets on a CPU)
training per sequence is overestimated slightly, by the AdamW step's share.

Presets too large to time on the machine (``--estimate``, e.g. 1b and 8b on a CPU) get the
count-based figure only: a training step costs about three forward passes (forward and a
backward twice its cost), so evaluation over training is about ``eval_seqs / (3 x
train_seqs)`` at the same sequence length. Every timed preset reports it too
(``eval_over_train_estimate``), which checks the estimate against the clock. An undecided
upload is measured on ``--eval.boost`` times the sequences (``eval_over_train_boosted_estimate``:
own ones as far as a full claim holds them).

Prints one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.hparams import load_hparams  # noqa: E402
from template.training.inner import make_optimizer, train_steps  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402
from template.validator.measure import sequence_losses  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, kernels)
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return min(best)


def sequence_counts(name: str, uploads: int) -> dict:
    """Sequences the validator reads per upload and the miner trains per upload, and the
    count-based estimate of their cost ratio (a training step ~ three forward passes)."""
    hp = load_hparams(name)
    cfg = ValidatorConfig()
    own, ctrl, pool = cfg.eval_own_seqs, cfg.eval_control_seqs, cfg.eval_control_pool
    # own sequences come only from the pages an upload claims (at most a window's work:
    # pages_per_window x seqs_per_page); an undecided upload (--eval.boost K) gets K times
    # both samples, its own ones as far as that claim holds them; the window's control pool
    # (pool x the control sample, K x that when boosted) is read "before" once per window
    claim = hp.pages_per_window * hp.data.seqs_per_page
    eval_seqs = 3 * min(own, claim) + 2 * ctrl + pool * ctrl / uploads
    train_seqs = hp.train.inner_steps * hp.train.batch_size
    k = cfg.eval_boost
    boosted = 3 * min(k * own, claim) + 2 * k * ctrl + k * pool * ctrl / uploads
    return {
        "seq_len": hp.model.seq_len,
        "eval_seqs_per_upload": eval_seqs,
        "train_seqs_per_upload": train_seqs,
        "eval_over_train_estimate": round(eval_seqs / (3 * train_seqs), 4),
        "eval_boost": k,
        "eval_seqs_per_boosted_upload": boosted,
        "eval_over_train_boosted_estimate": round(boosted / (3 * train_seqs), 4),
    }


def preset_cost(name: str, max_seqs: int, repeats: int, uploads: int) -> dict:
    hp = load_hparams(name)
    seqs = min(max_seqs, hp.train.batch_size)
    counts = sequence_counts(name, uploads)
    torch.manual_seed(0)
    model = build_model(hp.model)
    opt = make_optimizer(model, hp.train)
    batch = torch.randint(0, hp.model.vocab_size, (seqs, hp.model.seq_len + 1))
    fwd = timed(lambda: sequence_losses(model, batch, batch_size=seqs), repeats) / seqs
    step = timed(lambda: train_steps(model, opt, [batch], hp.train, start_step=0), repeats) / seqs
    eval_seqs, train_seqs = counts["eval_seqs_per_upload"], counts["train_seqs_per_upload"]
    return {
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        **counts,
        "seqs_per_timed_pass": seqs,
        "forward_seconds_per_seq": round(fwd, 5),
        "train_step_seconds_per_seq": round(step, 5),
        "eval_seconds_per_upload": round(eval_seqs * fwd, 3),
        "train_seconds_per_upload": round(train_seqs * step, 3),
        "eval_over_train": round(eval_seqs * fwd / (train_seqs * step), 4),
        "target_met": eval_seqs * fwd <= 0.10 * train_seqs * step,
        "target_met_boosted": counts["eval_seqs_per_boosted_upload"] * fwd
        <= 0.10 * train_seqs * step,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="tiny,150m")
    p.add_argument(
        "--seqs", default="tiny:16,150m:4", help="most sequences per timed pass, per preset"
    )
    p.add_argument(
        "--estimate", default="", help="presets with the count-based estimate only (e.g. 1b,8b)"
    )
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--uploads", type=int, default=8, help="uploads sharing the control pass")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    caps = dict(item.split(":") for item in args.seqs.split(","))
    presets = {
        n: preset_cost(n, int(caps.get(n, 4)), args.repeats, args.uploads)
        for n in filter(None, args.presets.split(","))
    }
    for n in filter(None, args.estimate.split(",")):
        counts = sequence_counts(n, args.uploads)
        presets[n] = {
            **counts,
            "target_met": counts["eval_over_train_estimate"] <= 0.10,
            "target_met_boosted": counts["eval_over_train_boosted_estimate"] <= 0.10,
        }
    out = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, CPU",
        "presets": presets,
    }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
