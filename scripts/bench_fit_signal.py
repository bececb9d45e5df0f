"""How much own-page evidence one window's upload carries (docs/scoring.md section 4b).

    python scripts/bench_fit_signal.py --json                         # fresh model, 2 honest + 1 wrong
    python scripts/bench_fit_signal.py --honest 2 --wrong 0 --seed 1 --json
    python scripts/bench_fit_signal.py --pretrain 150 --steps 35 --windows 4 --honest 3 --wrong 0 --json

Miners train through the real inner loop and compressor (error feedback, top-k, 2-bit values);
every window the mean of the uploads is applied as the outer step (``--no-outer`` keeps the
model fixed). Each upload is measured with the validator's own functions (leave-one-out
reference, own and control sequences) at several sample sizes and evaluation steps, and the
per-window fit z of every kind of miner is summarised. A wrong-pages miner trains honestly on
pages it was not assigned: its z should stay about N(0, 1).

Prints one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import incentive_sim as sim  # noqa: E402
from bench_validator_honest import as_upload  # noqa: E402

from template.hparams import load_hparams  # noqa: E402
from template.training.inner import make_optimizer, train_steps  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.validator.measure import (  # noqa: E402
    Measurement,
    control_sequences,
    delta_applied,
    own_sequences,
    reference_applied,
    sequence_losses,
    sum_delta,
)


def fit_z(own: torch.Tensor, own_pages, ctrl: torch.Tensor, ctrl_pages) -> float:
    """The judge's per-window statistic on paired excesses (``Measurement.fit_z`` itself)."""
    return Measurement(0, 1.0, tuple(own_pages), own, ctrl, ctrl, 0.0, tuple(ctrl_pages)).fit_z


def pretrained(hp, ds, steps: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(hp.model)
    opt = make_optimizer(model, hp.train)
    gen = torch.Generator().manual_seed(seed + 1)
    for s in range(steps):
        pages = torch.randint(ds.layout.num_train, (2,), generator=gen).tolist()
        train_steps(model, opt, [ds.sequences(pages)], hp.train, start_step=s)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--windows", type=int, default=10)
    p.add_argument("--honest", type=int, default=2)
    p.add_argument("--wrong", type=int, default=1, help="wrong-pages miners")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=0, help="inner steps per window (0: H)")
    p.add_argument("--pretrain", type=int, default=0, help="steps of plain training first")
    p.add_argument("--seqs", default="18,36", help="own = control sequence counts to compare")
    p.add_argument("--scales", default="1", help="evaluation steps, in outer-step weights")
    p.add_argument("--no-outer", action="store_true", help="keep the global model fixed")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    hp = load_hparams("tiny")
    sizes = sorted(int(x) for x in args.seqs.split(","))
    scales = [float(x) for x in args.scales.split(",")]
    steps = args.steps or hp.train.inner_steps
    kinds = ["honest"] * args.honest + ["wrong_pages"] * args.wrong
    z: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ds = sim.open_dataset(sim.build_dataset(Path(tmp) / "ds"), hp)
        base = pretrained(hp, ds, args.pretrain, args.seed)
        miners = [sim.new_trainee(base, hp) for _ in kinds]
        first = 1 if args.pretrain == 0 else 100
        for w in range(first, first + args.windows):
            ups = []
            for uid, (kind, t) in enumerate(zip(kinds, miners, strict=True)):
                page_uid = uid if kind == "honest" else uid + 1000
                delta, pages = sim.train_window(t, base, hp, ds, w, page_uid, steps)
                ups.append(as_upload(delta, w, uid, ds.layout.pages(w, uid, len(pages))))
            weight = hp.outer.lr / len(ups)
            shapes = {n: tuple(q.shape) for n, q in base.named_parameters()}
            total = sum_delta(ups, shapes)
            salt = f"bench-{args.seed}"
            cpages, ctrl = control_sequences(ds, max(sizes), w, salt)
            for up, kind in zip(ups, kinds, strict=True):
                opages, own = own_sequences(ds, up, max(sizes), w, salt)
                for mult in scales:
                    s = weight * mult
                    with reference_applied(
                        lambda d, k: delta_applied(base, d, k), total, len(ups), [up], s
                    ):
                        own_ref, ctrl_ref = sequence_losses(base, own), sequence_losses(base, ctrl)
                    with delta_applied(base, up.delta.sparse(), s):
                        own_up, ctrl_up = sequence_losses(base, own), sequence_losses(base, ctrl)
                    for n in sizes:
                        key = f"{kind}/seqs={n}/scale={mult:g}"
                        e_own, e_ctrl = (own_ref - own_up)[:n], (ctrl_ref - ctrl_up)[:n]
                        z.setdefault(key, []).append(fit_z(e_own, opages[:n], e_ctrl, cpages[:n]))
            if not args.no_outer:
                with torch.no_grad():
                    params = dict(base.named_parameters())
                    for name, (idx, v) in total.items():
                        params[name].data.view(-1)[idx] -= weight * v
            print(f"window {w} done", file=sys.stderr, flush=True)
    out = {
        "command": " ".join(sys.argv),
        "windows": args.windows,
        "steps": steps,
        "pages_per_upload": -(-steps * hp.train.batch_size // hp.data.seqs_per_page),
        "pretrain": args.pretrain,
        "outer": not args.no_outer,
        "fit_z": {
            k: {
                "mean": round(statistics.mean(v), 3),
                "sd": round(statistics.stdev(v), 3),
                "n": len(v),
            }
            for k, v in sorted(z.items())
            if len(v) > 1
        },
    }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
