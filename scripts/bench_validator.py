"""Validator evaluation cost vs the miner's training cost that produced the upload.

For each of N uploads: a miner trains hp.train.inner_steps steps (timed) on its pages from
the global model and compresses the delta; the validator decodes the signed upload, runs the
copy/free-rider/page checks and evaluates it (loss before/after on assigned and held-out
pages; timed). Prints JSON: seconds per upload on both sides and their ratio (goal <= 0.10).

    .venv/bin/python scripts/bench_validator.py --json [--preset tiny] [--uploads 4]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.hparams import hparams_hash, load_hparams  # noqa: E402
from template.signing import dev_keypair  # noqa: E402
from template.training.compression import Compressor  # noqa: E402
from template.training.inner import make_optimizer, train_steps  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.training.outer import pseudo_gradient, snapshot  # noqa: E402
from template.training.pages import PageDataset, batches  # noqa: E402
from template.training.shards import TokenStream, write_shards  # noqa: E402
from template.training.tokenizer import ByteTokenizer  # noqa: E402
from template.training.wire import decode_upload, encode_upload, upload_size_cap  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402
from template.validator.checks import (  # noqa: E402
    content_digest,
    free_riders,
    index_digest,
    page_claim_error,
    upload_norm,
)
from template.validator.evaluate import Evaluator  # noqa: E402


def synthetic_dataset(folder: Path, tokens: int) -> Path:
    import inspect
    import json as _json

    text = "\n".join(inspect.getsource(m) for m in (_json, inspect, argparse, statistics)) * 4
    tok = ByteTokenizer()
    ids = tok.encode(text)[:tokens]
    write_shards([ids], folder, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=1 << 20)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--uploads", type=int, default=4)
    ap.add_argument(
        "--dataset", default=None, help="a prepared dataset folder (default: synthetic)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    hp = load_hparams(a.preset)
    cfg = ValidatorConfig()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.dataset) if a.dataset else synthetic_dataset(Path(tmp) / "ds", 600_000)
        ds = PageDataset(TokenStream(folder), hp)
        model = build_model(hp.model)
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        ev = Evaluator(
            model,
            ds,
            hp,
            assigned_pages=cfg.eval_assigned_pages,
            heldout_pages=cfg.eval_heldout_pages,
            lr_scale=cfg.eval_lr_scale,
            salt="bench",
        )
        window = 3
        ev.heldout(
            window
        )  # the window's shared "before" loss: paid once per window, not per upload
        t_heldout = time.perf_counter()
        ev.forget()
        ev.heldout(window)
        t_heldout = time.perf_counter() - t_heldout
        train_s, eval_s, sizes = [], [], []
        for uid in range(a.uploads):
            m = copy.deepcopy(model)
            opt = make_optimizer(m, hp.train)
            pages = ds.layout.pages(window, uid, hp.pages_per_window)
            data = batches(ds.sequences(pages), hp.train.batch_size, hp.train.inner_steps)
            start = snapshot(m)
            t0 = time.perf_counter()
            train_steps(m, opt, data, hp.train, start_step=window * hp.train.inner_steps)
            train_s.append(time.perf_counter() - t0)
            delta = Compressor(hp.compression).compress(pseudo_gradient(start, m))
            blob = encode_upload(
                delta,
                window=window,
                uid=uid,
                hparams_hash=hparams_hash(hp),
                config=hp.compression,
                key=dev_keypair(f"//Alice//b{uid}"),
                pages=pages,
                steps=hp.train.inner_steps,
            )
            sizes.append(len(blob))
            t0 = time.perf_counter()
            up = decode_upload(
                blob,
                max_bytes=upload_size_cap(shapes, hp.compression),
                expected={"window": window, "uid": uid},
                param_shapes=shapes,
                config=hp.compression,
            )
            page_claim_error(up, ds.layout, window, uid)
            content_digest(up), index_digest(up)
            free_riders({uid: upload_norm(up)}, cfg.freerider_min_norm)
            ev.evaluate(up, window)
            eval_s.append(time.perf_counter() - t0)
    out = {
        "preset": a.preset,
        "device": "cpu",
        "threads": a.threads,
        "uploads": a.uploads,
        "upload_bytes": statistics.mean(sizes),
        "miner_train_seconds_per_upload": statistics.mean(train_s),
        "validator_seconds_per_upload": statistics.mean(eval_s),
        "validator_heldout_seconds_per_window": t_heldout,
        "ratio": statistics.mean(eval_s) / statistics.mean(train_s),
        "ratio_goal": 0.10,
        "eval_assigned_pages": cfg.eval_assigned_pages,
        "eval_heldout_pages": cfg.eval_heldout_pages,
    }
    print(json.dumps(out, indent=None if a.json else 2))


if __name__ == "__main__":
    main()
