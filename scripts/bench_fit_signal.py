"""How much own-page evidence one window's upload carries (docs/scoring.md section 4b).

    python scripts/bench_fit_signal.py --json                         # fresh model, 2 honest + 1 wrong
    python scripts/bench_fit_signal.py --honest 2 --wrong 0 --seed 1 --json
    python scripts/bench_fit_signal.py --pretrain 150 --steps 35 --windows 4 --honest 3 --wrong 0 --json
    python scripts/bench_fit_signal.py --honest 2 --wrong 0 --refs loo,loo+prev,none --json
    python scripts/bench_fit_signal.py --preset small --honest 2 --wrong 6 --windows 24 --per-uid --json

Miners train through the real inner loop and compressor (error feedback, top-k, 2-bit values);
every window the mean of the uploads is applied as the outer step (``--no-outer`` keeps the
model fixed). Each upload is measured with the validator's own functions (leave-one-out
reference, own and control sequences, the fitted crowd slope of ``Measurement``) at several
sample sizes and evaluation steps, and the per-window fit z of every kind of miner is
summarised. A wrong-pages miner trains honestly on pages it was not assigned: its z should stay
about N(0, 1).

``--refs`` compares references: ``loo`` (the validator's: the mean of the window's other
uploads), ``loo+prev`` (those and the previous window's mean upload) and ``none`` (the
unchanged model). ``--per-uid`` adds each uid's mean z and the skewness of its per-sequence
paired figures (control and own). The seed picks the validator's sample and, unless
``--same-training``, the windows trained (from window 1 + 1000 x seed: pages depend on the
window; before 2026-12-05 every seed trained the same windows).

Prints one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import incentive_sim as sim  # noqa: E402
from bench_validator_honest import as_upload  # noqa: E402

from template.training.inner import make_optimizer, train_steps  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.validator.measure import (  # noqa: E402
    Measurement,
    control_sequences,
    delta_applied,
    draw_pages,
    own_sequences,
    pick_sequences,
    sequence_losses,
    sum_delta,
)

REFS = ("loo", "loo+prev", "none")


def skewness(x: torch.Tensor) -> float:
    d = x.double() - x.double().mean()
    s = float(d.pow(2).mean().sqrt())
    return float(d.pow(3).mean()) / s**3 if s > 0 else 0.0


def with_mean(total: dict, mean: dict, shapes: dict) -> dict:
    """``total`` (name -> (flat indices, values)) plus ``mean``, on the union of their indices."""
    out = {}
    for name, shape in shapes.items():
        acc = torch.zeros(torch.Size(shape).numel())
        for idx, v in (total[name], mean[name]):
            acc.index_add_(0, idx, v)
        idx = acc.nonzero().view(-1)
        out[name] = (idx, acc[idx])
    return out


def null_claims(ds, uid: int, own_pages, window: int, salt: str, exclude: set, draws: int):
    """``draws`` page sets of as many pages and sequences as an upload's measured own sample
    (``own_pages``: the page of each own sequence), none claimed in the window nor control:
    [(the page of each sequence, sequences)]."""
    if draws <= 0 or not own_pages:
        return []
    out = []
    for k in range(draws):
        rng = random.Random(f"{salt}|null|{window}|{uid}|{k}")
        pages = draw_pages(rng, ds.layout.num_train, len(set(own_pages)), exclude)
        out.append(pick_sequences(ds, pages, len(own_pages), rng))
    return out


def null_fit(base, up, nulls: list, others: dict, count: int, s: float, m: Measurement) -> float:
    """The mean fit z of ``up`` over page sets it could not have trained on (``null_claims``),
    with its measurement ``m``'s control sequences and reference: what the statistic gives
    this upload when the claim carries no signal."""
    seqs = torch.cat([q for _, q in nulls])
    before = sequence_losses(base, seqs)
    if count:
        with delta_applied(base, others, s / count):
            ref = sequence_losses(base, seqs)
    else:
        ref = before
    with delta_applied(base, up.delta.sparse(), s):
        after = sequence_losses(base, seqs)
    zs, at = [], 0
    for pages, q in nulls:
        sl = slice(at, at + q.shape[0])
        at += q.shape[0]
        null = Measurement(
            m.uid,
            m.scale,
            tuple(pages),
            (ref - after)[sl],
            m.control_excess,
            m.control_gain,
            m.control_before,
            m.control_pages,
            (before - after)[sl],
        )
        zs.append(null.fit_z)
    return statistics.mean(zs)


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
    p.add_argument("--same-training", action="store_true", help="seeds vary only the sample")
    p.add_argument("--preset", choices=("tiny", "small"), default="tiny")
    p.add_argument("--corpus", default=str(sim.CORPUS), help="a UTF-8 text file, or stdlib")
    p.add_argument("--steps", type=int, default=0, help="inner steps per window (0: H)")
    p.add_argument("--pretrain", type=int, default=0, help="steps of plain training first")
    p.add_argument("--seqs", default="18,36", help="own = control sequence counts to compare")
    p.add_argument("--scales", default="1", help="evaluation steps, in outer-step weights")
    p.add_argument("--refs", default="loo", help=f"comma list of {', '.join(REFS)}")
    p.add_argument("--per-uid", action="store_true", help="per-uid mean z and skewness")
    p.add_argument(
        "--null-draws",
        type=int,
        default=0,
        help="per upload, the fit z on K random page sets claimed by no one (needs --per-uid)",
    )
    p.add_argument("--no-outer", action="store_true", help="keep the global model fixed")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    refs = args.refs.split(",")
    if set(refs) - set(REFS):
        p.error(f"--refs {args.refs!r}: expected a comma list of {', '.join(REFS)}")
    if args.null_draws < 0 or (args.null_draws and not args.per_uid):
        p.error("--null-draws K: K >= 0, and the null figures are per uid: add --per-uid")
    torch.set_num_threads(1)
    hp = sim.preset(args.preset)
    sizes = sorted(int(x) for x in args.seqs.split(","))
    scales = [float(x) for x in args.scales.split(",")]
    steps = args.steps or hp.train.inner_steps
    kinds = ["honest"] * args.honest + ["wrong_pages"] * args.wrong
    z: dict[str, list[float]] = {}
    uid_z: dict[int, list[float]] = {}
    uid_skew: dict[int, list[tuple[float, float]]] = {}
    null_z: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ds = sim.open_dataset(sim.build_dataset(Path(tmp) / "ds", corpus=args.corpus), hp)
        base = pretrained(hp, ds, args.pretrain, args.seed)
        miners = [sim.new_trainee(base, hp) for _ in kinds]
        first = 1 if args.pretrain == 0 else 100
        if not args.same_training:
            first += 1000 * args.seed
        shapes = {n: tuple(q.shape) for n, q in base.named_parameters()}
        previous = None  # the previous window's mean upload (name -> (indices, values))
        for w in range(first, first + args.windows):
            ups = []
            for uid, (kind, t) in enumerate(zip(kinds, miners, strict=True)):
                page_uid = uid if kind == "honest" else uid + 1000
                delta, pages = sim.train_window(t, base, hp, ds, w, page_uid, steps)
                ups.append(as_upload(delta, w, uid, ds.layout.pages(w, uid, len(pages))))
            weight = hp.outer.lr / len(ups)
            total = sum_delta(ups, shapes)
            salt = f"bench-{args.seed}"
            claims = {q for up in ups for q in up.pages}
            cpages, ctrl = control_sequences(ds, max(sizes), w, salt, claims)
            ctrl_before = sequence_losses(base, ctrl)
            for up, kind in zip(ups, kinds, strict=True):
                opages, own = own_sequences(ds, up, max(sizes), w, salt)
                own_before = sequence_losses(base, own)
                nulls = null_claims(
                    ds, up.uid, opages, w, salt, claims | set(cpages), args.null_draws
                )
                others = sum_delta([u for u in ups if u is not up], shapes)
                references = {
                    "loo": (others, len(ups) - 1),
                    "loo+prev": None
                    if previous is None
                    else (with_mean(others, previous, shapes), len(ups)),
                    "none": (None, 0),
                }
                for mult in scales:
                    s = weight * mult
                    with delta_applied(base, up.delta.sparse(), s):
                        own_up, ctrl_up = sequence_losses(base, own), sequence_losses(base, ctrl)
                    for ref in refs:
                        if references[ref] is None:
                            continue  # no previous window yet
                        d, count = references[ref]
                        if count == 0:
                            own_ref, ctrl_ref = own_before, ctrl_before
                        else:
                            with delta_applied(base, d, s / count):
                                own_ref = sequence_losses(base, own)
                                ctrl_ref = sequence_losses(base, ctrl)
                        for n in sizes:
                            m = Measurement(
                                up.uid,
                                s,
                                tuple(opages[:n]),
                                (own_ref - own_up)[:n],
                                (ctrl_ref - ctrl_up)[:n],
                                (ctrl_before - ctrl_up)[:n],
                                float(ctrl_before[:n].mean()),
                                tuple(cpages[:n]),
                                (own_before - own_up)[:n],
                            )
                            key = f"{kind}/seqs={n}/scale={mult:g}"
                            if ref != "loo":
                                key += f"/ref={ref}"
                            z.setdefault(key, []).append(m.fit_z)
                            if ref == "loo" and n == max(sizes) and mult == scales[0]:
                                o, c = m.adjusted()
                                uid_z.setdefault(up.uid, []).append(m.fit_z)
                                uid_skew.setdefault(up.uid, []).append((skewness(c), skewness(o)))
                                if nulls:
                                    null_z.setdefault(up.uid, []).append(
                                        null_fit(base, up, nulls, others, len(ups) - 1, s, m)
                                    )
            previous = {n: (i, v / len(ups)) for n, (i, v) in total.items()}
            if not args.no_outer:
                with torch.no_grad():
                    params = dict(base.named_parameters())
                    for name, (idx, v) in total.items():
                        params[name].data.view(-1)[idx] -= weight * v
            print(f"window {w} done", file=sys.stderr, flush=True)
    out = {
        "command": " ".join(sys.argv),
        "windows": args.windows,
        "first_window": first,
        "steps": steps,
        "preset": args.preset,
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
    if args.per_uid:
        out["per_uid"] = {
            str(u): {
                "kind": kinds[u],
                "mean_z": round(statistics.mean(v), 3),
                "z": [round(x, 3) for x in v],
                "control_skew": round(statistics.mean(c for c, _ in uid_skew[u]), 3),
                "own_skew": round(statistics.mean(o for _, o in uid_skew[u]), 3),
                **(
                    {
                        "null_mean": round(statistics.mean(null_z[u]), 3),
                        "null_z": [round(x, 3) for x in null_z[u]],
                    }
                    if u in null_z
                    else {}
                ),
            }
            for u, v in sorted(uid_z.items())
        }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
