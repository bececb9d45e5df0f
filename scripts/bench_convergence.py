#!/usr/bin/env python
"""DDP, DiLoCo, plain averaging and SparseLoCo at equal tokens, K miners in one process.

    python scripts/bench_convergence.py --json                  # the preset's H, 375 steps/miner
    python scripts/bench_convergence.py --quick --json          # under 10 min on 2 CPU cores
    python scripts/bench_convergence.py --data corpus.txt --ood other.txt --seeds 0 1 --json

Prints one JSON object; writes a PNG of loss against tokens and against bytes sent.
SparseLoCo uploads go through the real signed wire format, so their byte count is what a
miner uploads. DDP's bytes are one dense fp32 gradient all-reduce per inner step. The
default corpus is ../shared/data/tinyshakespeare.txt; when it is absent the run stops with
an error unless ``--data stdlib`` names the fallback (the Python standard library's
sources) explicitly. ``--diloco-sweep lr:momentum ...`` runs DiLoCo once per pair and
records them all; the best is reported as ``diloco``. DDP gets its own learning rate the same
way: ``--ddp-lr-scales`` multiplies the preset's inner lr (the miners' own, tuned for local
steps), runs DDP once per scale, records the sweep as ``ddp_lr_sweep`` and reports the best as
``ddp``, so the gap is to a tuned DDP. Both sweeps run on the first seed; later seeds run the
winner only. SparseLoCo runs a late network by default (``--schedule live``): window w
starts without w-1's aggregate, which arrives half-way through (the latest a miner waits for
it is the leader's publish deadline, mid-window: ``template/miner/loop.py``), and until then
the miner carries on from its own weights (``template/training/overlap.py``). ``--schedule
sync`` is a network on time (the miner starts once the aggregate is applied); ``--schedule
stale`` the late case with the earlier miner, which restarted from the global model without
the aggregate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from template.hparams import hparams_hash, load_hparams  # noqa: E402
from template.signing import dev_keypair  # noqa: E402
from template.training.corpus import iter_documents  # noqa: E402
from template.training.model import build_model, param_shapes  # noqa: E402
from template.training.pages import PageDataset  # noqa: E402
from template.training.shards import TokenStream, write_shards  # noqa: E402
from template.training.simulate import METHODS, EvalSets, simulate  # noqa: E402
from template.training.tokenizer import ByteTokenizer  # noqa: E402
from template.training.wire import decode_upload, encode_upload, upload_size_cap  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "tinyshakespeare.txt"
DEFAULT_OOD = SHARED / "wikitext2-valid.txt"


def wire_roundtrip(hp, shapes):
    """encode_upload -> bytes -> strict decode_upload, as a miner and a validator would."""
    key = dev_keypair("//Bench")
    run = hparams_hash(hp)
    cap = upload_size_cap(shapes, hp.compression)

    def roundtrip(cd, window, uid):
        blob = encode_upload(
            cd, window=window, uid=uid, hparams_hash=run, config=hp.compression, key=key
        )
        up = decode_upload(
            blob,
            max_bytes=cap,
            expected={"window": window, "uid": uid},
            param_shapes=shapes,
            config=hp.compression,
        )
        return up.delta, len(blob)

    return roundtrip


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        xs = [c["tokens"] / 1e6 for c in r.curve]
        ys = [c["val_loss"] for c in r.curve]
        a.plot(xs, ys, marker="o", label=name)
        bx = [max(c["bytes_sent"], 1) / 1e6 for c in r.curve[1:]]
        b.plot(bx, ys[1:], marker="o", label=name)
    a.set(xlabel="tokens (M)", ylabel="held-out loss (nats)", title="loss vs tokens")
    b.set(
        xlabel="MB sent per node (log)",
        ylabel="held-out loss (nats)",
        title="loss vs bytes sent",
        xscale="log",
    )
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def prepare(paths: list[Path], out: Path) -> TokenStream:
    """Byte-tokenise ``paths`` into shards under ``out``."""
    tok = ByteTokenizer()
    docs = (tok.encode(t) + [tok.eot_id] for t in iter_documents([str(p) for p in paths]))
    write_shards(docs, out, vocab_size=tok.vocab_size, tokenizer=tok.name)
    return TokenStream(out)


def resolve_data(data: list[str] | None) -> tuple[list[Path], str]:
    """(paths, source name). The default corpus must exist; ``stdlib`` is the named fallback."""
    if data == ["stdlib"]:
        import json as mod

        return [Path(mod.__file__).parent], "stdlib fallback (Python standard-library sources)"
    if data:
        return [Path(d) for d in data], "user"
    if not DEFAULT_DATA.is_file():
        raise SystemExit(
            f"default corpus {DEFAULT_DATA} not found: pass --data PATH, "
            "or --data stdlib to train on the Python standard library's sources"
        )
    return [DEFAULT_DATA], "default (tinyshakespeare)"


def parse_sets(items: list[str]) -> dict:
    """``key=value`` hparams overrides (dotted keys, TOML-like values)."""
    out = {}
    for item in items:
        key, _, raw = item.partition("=")
        out[key] = tomllib.loads(f"v = {raw}")["v"]
    return out


def byte_table(hp, topks: list[int], steps_per_miner: int) -> list[dict]:
    """Signed upload bytes of the model's shapes at each topk, and MB per miner at H=3/5/15/25."""
    from template.training.compression import Compressor

    model = build_model(hp.model)
    shapes = param_shapes(model)
    out = []
    for k in topks:
        hpk = hp.replace(**{"compression.topk": k})
        g = torch.Generator().manual_seed(k)
        delta = {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}
        _, size = wire_roundtrip(hpk, shapes)(Compressor(hpk.compression).compress(delta), 0, 0)
        mb = {h: round(steps_per_miner // h * size / 1e6, 3) for h in (3, 5, 15, 25)}
        out.append({"topk": k, "bytes_per_upload": size, "mb_per_miner_at_H": mb})
    return out


def mean_spread(xs: list[float]) -> dict:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"mean": None}
    m = sum(xs) / len(xs)
    return {"mean": round(m, 4), "min": round(min(xs), 4), "max": round(max(xs), 4), "n": len(xs)}


def run_seed(args, hp, seed: int, data: list[Path], ood_path: Path | None, tmp: Path) -> dict:
    hp = hp.replace(**{"model.init_seed": seed, "data.seed": seed})
    ds = PageDataset(prepare(data, tmp / f"train{seed}"), hp)
    val = ds.sequences(ds.layout.heldout_pages(0, args.eval_pages))
    ood = None
    if ood_path is not None:
        ood_ds = PageDataset(prepare([ood_path], tmp / f"ood{seed}"), hp)
        ood = ood_ds.sequences(list(range(min(args.eval_pages, ood_ds.layout.num_pages))))
    shapes = param_shapes(build_model(hp.model))
    results, sweep, ddp_sweep = {}, [], []

    def sim(method: str, hpm) -> object:
        return simulate(
            method,
            hpm,
            ds,
            EvalSets(val, ood),
            miners=args.miners,
            outer_steps=args.outer_steps,
            eval_every=max(1, args.outer_steps // 8),
            encode_upload=wire_roundtrip(hpm, shapes) if method == "sparseloco" else None,
            wire_every=args.wire_every,
            sparse_momentum=args.sparse_momentum,
            delayed_outer=method == "sparseloco" and args.schedule != "sync",
            carry_ahead=args.schedule == "live",
            device=args.device,
        )

    def best_of(method: str, variants: list[tuple[dict, dict]], record: list) -> tuple:
        """Run ``method`` once per (label, overrides); record each; return the best (label, run)."""
        best = None
        for label, overrides in variants:
            r = sim(method, hp.replace(**overrides))
            record.append({**label, **r.summary()})
            if best is None or r.val_loss < best[1].val_loss:
                best = (label, r)
        return best

    for method in args.methods:
        if method == "ddp":
            variants = [
                ({"lr_scale": k, "lr": hp.train.lr * k}, {"train.lr": hp.train.lr * k})
                for k in args.ddp_lr_scales
            ]
            label, results["ddp"] = best_of("ddp", variants, ddp_sweep)
            args.ddp_lr_scales = [label["lr_scale"]]  # later seeds: the winner only
        elif method == "diloco" and args.diloco_sweep:
            pairs = [tuple(float(x) for x in pair.split(":")) for pair in args.diloco_sweep]
            variants = [
                ({"lr": lr, "momentum": m}, {"outer.diloco_lr": lr, "outer.diloco_momentum": m})
                for lr, m in pairs
            ]
            label, results["diloco"] = best_of("diloco", variants, sweep)
            args.diloco_sweep = [f"{label['lr']}:{label['momentum']}"]  # later seeds: the winner
        else:
            results[method] = sim(method, hp)
    return {"results": results, "diloco_sweep": sweep, "ddp_lr_sweep": ddp_sweep}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", nargs="*", default=None, help="training corpus files or 'stdlib'")
    p.add_argument("--ood", default=None, help="out-of-domain corpus (default: wikitext2-valid)")
    p.add_argument("--hparams", default="tiny")
    p.add_argument("--set", nargs="*", default=[], help="hparams overrides, e.g. outer.lr=1.5")
    p.add_argument("--miners", type=int, default=4, help="K")
    p.add_argument("--inner-steps", type=int, default=None, help="H (default: the preset's)")
    p.add_argument("--steps-per-miner", type=int, default=375, help="inner steps per miner")
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--diloco-sweep", nargs="*", default=[], help="lr:momentum pairs")
    p.add_argument(
        "--ddp-lr-scales",
        nargs="+",
        type=float,
        default=[0.4, 0.5, 0.65],
        help="DDP's inner lr as multiples of the preset's; the best is reported (--quick: 0.5)",
    )
    p.add_argument("--sparse-momentum", type=float, default=0.0, help="simulation lever only")
    p.add_argument(
        "--schedule",
        choices=("live", "stale", "sync"),
        default="live",
        help="sparseloco: live = the previous window's outer step arrives mid-window (a late "
        "aggregate; until then the miner carries on from its own weights), stale = the same "
        "delay restarting from the global model without it (the earlier miner), sync = every "
        "window starts from the newest global model (a network on time)",
    )
    p.add_argument("--wire-every", type=int, default=1, help="wire round trip every n windows")
    p.add_argument("--quick", action="store_true", help="60 steps per miner, one seed")
    p.add_argument("--eval-pages", type=int, default=16)
    p.add_argument("--plot", default="out/convergence.png", help="PNG path ('' to skip)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--byte-table", nargs="*", type=int, help="only print upload bytes per topk")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    if args.quick:
        args.steps_per_miner, args.seeds = 60, args.seeds[:1]
        if len(args.ddp_lr_scales) > 1:
            args.ddp_lr_scales = [0.5]

    hp = load_hparams(args.hparams).replace(**parse_sets(args.set))
    if args.byte_table:
        print(json.dumps({"byte_table": byte_table(hp, args.byte_table, args.steps_per_miner)}))
        return 0
    H = args.inner_steps or hp.train.inner_steps
    if args.steps_per_miner % H:
        raise SystemExit(f"--steps-per-miner {args.steps_per_miner} is not a multiple of H={H}")
    args.outer_steps = args.steps_per_miner // H
    hp = hp.replace(**{"train.inner_steps": H, "train.total_steps": args.steps_per_miner})
    data, source = resolve_data(args.data)
    ood_path = Path(args.ood) if args.ood else DEFAULT_OOD
    if not ood_path.is_file():
        logging.warning("no out-of-domain corpus at %s: ood_loss skipped", ood_path)
        ood_path = None

    t0 = time.perf_counter()
    per_seed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            per_seed[seed] = run_seed(args, hp, seed, data, ood_path, Path(tmp))
    first = per_seed[args.seeds[0]]["results"]
    runs = {}
    for m in first:
        rs = [per_seed[s]["results"][m] for s in args.seeds]
        runs[m] = {
            "val_loss": mean_spread([r.val_loss for r in rs]),
            "ood_loss": mean_spread([r.ood_loss for r in rs]),
            "per_seed": {s: per_seed[s]["results"][m].summary() for s in args.seeds},
        }
    out = {
        "hparams": hp.name,
        "overrides": parse_sets(args.set),
        "miners": args.miners,
        "inner_steps": H,
        "outer_steps": args.outer_steps,
        "tokens_per_method": args.miners
        * args.steps_per_miner
        * hp.train.batch_size
        * hp.model.seq_len,
        "seeds": args.seeds,
        "data": [str(d) for d in data],
        "data_source": source,
        "ood": str(ood_path) if ood_path else None,
        "sparse_momentum": args.sparse_momentum,
        "sparseloco_schedule": args.schedule,
        "runs": runs,
        "diloco_sweep": per_seed[args.seeds[0]]["diloco_sweep"],
        "ddp_lr_sweep": per_seed[args.seeds[0]]["ddp_lr_sweep"],
        "ddp_lr": hp.train.lr * args.ddp_lr_scales[0] if "ddp" in first else None,
        "curves": {m: r.curve for m, r in first.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    for m in ("avg", "sparseloco", "diloco"):
        if "ddp" in first and m in first:
            gaps = [
                per_seed[s]["results"][m].val_loss / per_seed[s]["results"]["ddp"].val_loss - 1
                for s in args.seeds
            ]
            out[f"{m}_gap_to_ddp"] = mean_spread(gaps)
    if "sparseloco" in first:
        out["sparseloco_mb_per_miner"] = round(first["sparseloco"].bytes_per_node_total / 1e6, 3)
    if args.plot:
        plot(first, Path(args.plot))
        out["plot"] = args.plot
    print(json.dumps(out, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
