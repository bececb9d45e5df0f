#!/usr/bin/env python
"""Compare DDP, dense DiLoCo and SparseLoCo at equal tokens, K miners simulated in one process.

    python scripts/bench_convergence.py --json            # K=4, H=15, 25 outer steps
    python scripts/bench_convergence.py --quick --json    # a few minutes on 2 CPU cores

Prints one JSON object; writes a PNG of loss against tokens and against bytes sent.
SparseLoCo uploads go through the real signed wire format, so their byte count is what a
miner uploads per window. DDP's bytes are one dense fp32 gradient all-reduce per inner step.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from template.hparams import hparams_hash, load_hparams  # noqa: E402
from template.signing import dev_keypair  # noqa: E402
from template.training.corpus import iter_documents  # noqa: E402
from template.training.pages import PageDataset  # noqa: E402
from template.training.shards import TokenStream, write_shards  # noqa: E402
from template.training.simulate import METHODS, EvalSets, simulate  # noqa: E402
from template.training.tokenizer import ByteTokenizer  # noqa: E402
from template.training.wire import decode_upload, encode_upload, upload_size_cap  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def fallback_corpus() -> Path:
    """The standard library's own sources: a corpus every Python install has."""
    import json as mod

    return Path(mod.__file__).parent


def prepare(paths: list[Path], out: Path) -> TokenStream:
    tok = ByteTokenizer()
    docs = (tok.encode(t) + [tok.eot_id] for t in iter_documents([str(p) for p in paths]))
    write_shards(docs, out, vocab_size=tok.vocab_size, tokenizer=tok.name)
    return TokenStream(out)


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


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", nargs="*", default=None, help="training corpus (default: shared tinyshakespeare)"
    )
    p.add_argument(
        "--ood", default=None, help="out-of-domain corpus (default: shared wikitext2-valid)"
    )
    p.add_argument("--hparams", default="tiny")
    p.add_argument("--miners", type=int, default=4, help="K")
    p.add_argument("--inner-steps", type=int, default=15, help="H")
    p.add_argument("--outer-steps", type=int, default=25)
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument(
        "--quick",
        action="store_true",
        help="6 outer steps (a smoke run: ~8 min on 2 busy cores, less when idle)",
    )
    p.add_argument("--eval-pages", type=int, default=16)
    p.add_argument("--plot", default="out/convergence.png", help="PNG path ('' to skip)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    outer_steps = 6 if args.quick else args.outer_steps

    hp = load_hparams(args.hparams)
    hp = hp.replace(
        **{
            "train.inner_steps": args.inner_steps,
            "train.total_steps": args.inner_steps * outer_steps,
        }
    )
    data = [Path(d) for d in args.data] if args.data else None
    if data is None:
        shk = SHARED / "tinyshakespeare.txt"
        data = [shk] if shk.is_file() else [fallback_corpus()]
    ood_path = Path(args.ood) if args.ood else SHARED / "wikitext2-valid.txt"

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ds = PageDataset(prepare(data, Path(tmp) / "train"), hp)
        val = ds.sequences(ds.layout.heldout_pages(0, args.eval_pages))
        ood = None
        if ood_path.is_file():
            ood_ds = PageDataset(prepare([ood_path], Path(tmp) / "ood"), hp)
            ood = ood_ds.sequences(list(range(min(args.eval_pages, ood_ds.layout.num_pages))))
        shapes = None
        results = {}
        for method in args.methods:
            if method == "sparseloco" and shapes is None:
                from template.training.model import build_model, param_shapes

                shapes = param_shapes(build_model(hp.model))
            results[method] = simulate(
                method,
                hp,
                ds,
                EvalSets(val, ood),
                miners=args.miners,
                outer_steps=outer_steps,
                eval_every=max(1, outer_steps // 8),
                encode_upload=wire_roundtrip(hp, shapes) if method == "sparseloco" else None,
                device=args.device,
            )
    out = {
        "hparams": hp.name,
        "miners": args.miners,
        "inner_steps": args.inner_steps,
        "outer_steps": outer_steps,
        "data": [str(d) for d in data],
        "ood": str(ood_path) if ood_path.is_file() else None,
        "runs": {m: r.summary() for m, r in results.items()},
        "curves": {m: r.curve for m, r in results.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    runs = out["runs"]
    if "ddp" in runs and "sparseloco" in runs:
        out["sparseloco_gap_to_ddp"] = round(
            runs["sparseloco"]["val_loss"] / runs["ddp"]["val_loss"] - 1, 4
        )
    if "diloco" in runs and "sparseloco" in runs:
        out["sparseloco_minus_diloco"] = round(
            runs["sparseloco"]["val_loss"] - runs["diloco"]["val_loss"], 4
        )
    if args.plot:
        plot(results, Path(args.plot))
        out["plot"] = args.plot
    print(json.dumps(out if args.json else out, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
