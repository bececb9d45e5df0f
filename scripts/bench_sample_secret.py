"""What a miner gains from knowing which control sequences a validator measures.

    python scripts/bench_sample_secret.py --seeds 3 --windows 3 --json

The validator pays an upload by its gain on control sequences and rejects it as harmful by
the same sequences (judge.py, score.py). Before 2026-12-04 their seed was public (the
validator's hotkey and the window), so a miner could compute them. This benchmark measures
three miners who do, next to 3 honest miners, with the validator's own ``Measurer``:

- ``control_gamer``: trains honestly (H steps on its pages), then ``--extra`` steps on the
  control sequences it predicts: a larger paid gain for a few more batches;
- ``masked_poison``: moves the model against the honest miners' mean (``--poison`` times
  it: an upload that undoes training), then the same extra steps on the predicted control
  sequences, so that the harm test on those sequences passes;
- ``masked_trojan``: the poison (``--trojan-poison`` times) and an honest window's steps on
  its own pages (evidence of training, which makes a peer), then the extra steps.

Each window's uploads are measured twice: with the seed the miners predicted (``public``,
the old behaviour) and with a secret they do not know (``secret``, now). Per class: its
control gain over the honest miners' (ratio of means: what pays, capped at 1 by the par
gain), harm-test rejections (harm z below -3), the one-window fit z and how often it
reaches the proof bar, and the held-out loss change when the upload alone is applied at its
outer-step weight. Tiny preset, pretrained ``--pretrain`` steps, the honest mean applied as
the outer step every window.

Prints one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from statistics import NormalDist

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import incentive_sim as sim  # noqa: E402
from bench_fit_signal import pretrained  # noqa: E402
from bench_validator_honest import as_upload  # noqa: E402

from template.hparams import load_hparams  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402
from template.validator.evaluate import fixed_heldout_loss  # noqa: E402
from template.validator.measure import (  # noqa: E402
    Measurer,
    control_sequences,
    delta_applied,
    sum_delta,
)

HONEST = 3
CLASSES = ("honest", "control_gamer", "masked_poison", "masked_trojan")


def predicted_controls(ds, cfg, window: int, salt: str, claims) -> torch.Tensor:
    """The control sequences a validator seeded with ``salt`` measures in ``window``."""
    return control_sequences(ds, cfg.eval_control_seqs, window, salt, claims)[1]


def control_batches(controls: torch.Tensor, hp, extra: int) -> list[torch.Tensor]:
    bs = hp.train.batch_size
    return [torch.roll(controls, -i * bs, dims=0)[:bs] for i in range(extra)]


def poison_shift(honest_sum, shapes, times: float) -> dict[str, torch.Tensor]:
    """``times`` the honest mean delta, as a parameter shift that undoes that much training."""
    out = {}
    for name, (idx, v) in honest_sum.items():
        dense = torch.zeros(shapes[name]).view(-1)
        dense[idx] = v * times / HONEST  # theta + delta: against the update theta - delta
        out[name] = dense.view(shapes[name])
    return out


def window_uploads(w, hp, ds, cfg, base, trainees, shapes, public, args) -> dict[int, tuple]:
    """uid -> (class, upload) for one window; the attackers predict with ``public``."""
    H = hp.train.inner_steps
    out = {}
    for uid in range(HONEST):
        delta, pages = sim.train_window(trainees[uid], base, hp, ds, w, uid, H)
        out[uid] = ("honest", as_upload(delta, w, uid, pages))
    n_pages = len(out[0][1].pages)
    claims = {p for u in range(len(trainees)) for p in ds.layout.pages(w, u, n_pages)}
    gaming = control_batches(predicted_controls(ds, cfg, w, public, claims), hp, args.extra)
    honest_sum = sum_delta([up for _, up in out.values()], shapes)
    shifts = {
        "masked_poison": poison_shift(honest_sum, shapes, args.poison),
        "masked_trojan": poison_shift(honest_sum, shapes, args.trojan_poison),
    }
    for uid, kind in enumerate(CLASSES[1:], start=HONEST):
        own, pages = sim.window_batches(ds, hp, w, uid, H)
        batches = {"control_gamer": own, "masked_poison": [], "masked_trojan": own}[kind]
        delta = sim.train_from(trainees[uid], base, hp, batches + gaming, w, shifts.get(kind))
        out[uid] = (kind, as_upload(delta, w, uid, pages))
    return out


def run_seed(seed: int, args, hp, ds, cfg) -> dict[str, list[float]]:
    """Per "class/figure" key, one value per window (figures: gain_public, gain_secret,
    harm_z_public, ..., heldout_change)."""
    base = pretrained(hp, ds, args.pretrain, seed)
    trainees = {u: sim.new_trainee(base, hp) for u in range(HONEST + len(CLASSES) - 1)}
    shapes = {n: tuple(q.shape) for n, q in base.named_parameters()}
    public = f"5Hotkey-of-validator-{seed}"  # what the miners know
    secret = hashlib.sha256(f"secret-{seed}".encode()).hexdigest()  # what they do not
    rows: dict[str, list[float]] = {}
    for w in range(100, 100 + args.windows):
        ups = window_uploads(w, hp, ds, cfg, base, trainees, shapes, public, args)
        scale = hp.outer.lr / len(ups)
        for label, salt in (("public", public), ("secret", secret)):
            m = Measurer(base, ds, own=cfg.eval_own_seqs, control=cfg.eval_control_seqs, salt=salt)
            m.begin_window(w, [up for _, up in ups.values()], scale)
            for kind, up in ups.values():
                r = m.measure(up)
                for figure, value in (
                    ("gain", r.control_mean),
                    ("harm_z", r.harm_z),
                    ("fit_z", r.fit_z),
                ):
                    rows.setdefault(f"{kind}/{figure}_{label}", []).append(value)
        before = fixed_heldout_loss(base, ds, cfg.eval_status_pages)
        for kind, up in ups.values():
            with delta_applied(base, up.delta.sparse(), scale):
                change = fixed_heldout_loss(base, ds, cfg.eval_status_pages) - before
            rows.setdefault(f"{kind}/heldout_change", []).append(change)
        honest_sum = sum_delta([up for k, up in ups.values() if k == "honest"], shapes)
        with torch.no_grad():  # the honest mean is the outer step
            params = dict(base.named_parameters())
            for name, (idx, v) in honest_sum.items():
                params[name].data.view(-1)[idx] -= hp.outer.lr / HONEST * v
        print(f"seed {seed} window {w} done", file=sys.stderr, flush=True)
    return rows


def summary(values: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def per_class(rows: dict[str, list[float]], cfg) -> dict[str, dict]:
    """Per class and seed: its paid gain over the honest miners' (ratio of means), harm-test
    rejections and one-window proofs, with the predicted and the secret sample."""
    z_proof = NormalDist().inv_cdf(1 - cfg.judge_alpha)
    out = {}
    for kind in CLASSES:
        c = {"heldout_change": summary(rows[f"{kind}/heldout_change"])}
        for label in ("public", "secret"):
            gain, honest = rows[f"{kind}/gain_{label}"], rows[f"honest/gain_{label}"]
            harm, fit = rows[f"{kind}/harm_z_{label}"], rows[f"{kind}/fit_z_{label}"]
            c[label] = {
                "gain_over_honest": round(statistics.mean(gain) / statistics.mean(honest), 3),
                "harm_rejected": sum(z < -cfg.judge_harm_z for z in harm),
                "fit_z": summary(fit),
                "fit_z_at_bar": sum(z >= z_proof for z in fit),
                "uploads": len(gain),
            }
        out[kind] = c
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--pretrain", type=int, default=150)
    p.add_argument("--extra", type=int, default=9, help="steps on the predicted controls")
    p.add_argument("--poison", type=float, default=4.0, help="times the honest mean, reversed")
    p.add_argument("--trojan-poison", type=float, default=1.5, help="the trojan's poison")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    hp, cfg = load_hparams("tiny"), ValidatorConfig()
    pooled: dict[str, list[float]] = {}
    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        ds = sim.open_dataset(sim.build_dataset(Path(tmp) / "ds"), hp)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows = run_seed(seed, args, hp, ds, cfg)
            seeds[seed] = per_class(rows, cfg)
            for key, values in rows.items():
                pooled.setdefault(key, []).extend(values)
    out = {
        "command": " ".join(sys.argv),
        "preset": "tiny",
        "windows_per_seed": args.windows,
        "inner_steps": hp.train.inner_steps,
        "extra_steps": args.extra,
        "poison": args.poison,
        "trojan_poison": args.trojan_poison,
        "harm_z_bar": -cfg.judge_harm_z,
        "pooled": per_class(pooled, cfg),
        "per_seed": seeds,
    }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
