"""Real tiny training for ``bench_validator.py --honest`` and ``--eval`` (see its docstring)."""

from __future__ import annotations

import copy
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch

from template.hparams import HParams
from template.training.compression import CompressedDelta, CompressedTensor, Compressor
from template.training.inner import make_optimizer, train_steps
from template.training.model import build_model
from template.training.outer import pseudo_gradient, snapshot, sparse_outer_step
from template.training.pages import PageDataset, batches
from template.training.shards import TokenStream, write_shards
from template.training.tokenizer import ByteTokenizer
from template.training.wire import Upload
from template.validator.copies import CopyRules, aggregate_sketch, mix_scores, window_salt
from template.validator.replay import ReplayMemory
from template.validator.screen import screen_window
from template.validator.sketch import flatten, shared_overlap_and_cosine

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TRAIN_SECONDS: list[float] = []  # each honest upload's inner loop (the miner's cost)


def dataset(hp: HParams, folder: Path) -> PageDataset:
    tok = ByteTokenizer()
    text = CORPUS.read_text(encoding="utf-8")
    docs = [tok.encode(text[i : i + 100_000]) + [tok.eot_id] for i in range(0, len(text), 100_000)]
    write_shards(docs, folder, vocab_size=tok.vocab_size, tokenizer=tok.name)
    return PageDataset(TokenStream(folder), hp)


def as_upload(delta: CompressedDelta, window: int, uid: int, pages) -> Upload:
    return Upload(window, uid, f"hk{uid}", 0, "", 0, delta, tuple(pages), 1)


def dense(up: Upload) -> dict[str, torch.Tensor]:
    return up.delta.to_dense()


def swap_indices(up: Upload, share: float, gen: torch.Generator) -> CompressedDelta:
    """``share`` of every tensor's indices moved to other positions (values kept)."""
    out = {}
    for name, t in up.delta.tensors.items():
        idx = t.indices.clone()
        k = int(share * idx.numel())
        pick = torch.randperm(idx.numel(), generator=gen)[:k]
        free = torch.ones(t.numel, dtype=torch.bool)
        free[idx] = False
        pool = free.nonzero().view(-1)
        idx[pick] = pool[torch.randperm(pool.numel(), generator=gen)[:k]]
        order = idx.argsort()
        out[name] = CompressedTensor(t.shape, idx[order], t.codes[order], t.codebook)
    return CompressedDelta(out)


def recompress(d: dict[str, torch.Tensor], hp: HParams) -> CompressedDelta:
    return Compressor(hp.compression).compress(d)


def attacks(hp, honest: list[Upload], last: list[Upload], gen) -> dict[str, CompressedDelta]:
    dens = [dense(u) for u in honest]
    names = list(dens[0])
    mean = {k: sum(d[k] for d in dens) / len(dens) for k in names}
    std = {k: torch.stack([d[k] for d in dens]).std(0) for k in names}
    victim = dens[0]
    out = {
        "aggregator": recompress(mean, hp),
        "alie": recompress({k: mean[k] - std[k] for k in names}, hp),
        "partial_copy_20pct": swap_indices(honest[0], 0.2, gen),
        "noisy_copy": recompress(
            {k: v + 0.3 * v.std() * torch.randn(v.shape, generator=gen) for k, v in victim.items()},
            hp,
        ),
    }
    if last:
        ld = [dense(u) for u in last]
        out["last_aggregate"] = recompress({k: sum(d[k] for d in ld) / len(ld) for k in names}, hp)
    return out


def honest_windows(hp: HParams, ds: PageDataset, miners: int, windows: int, seed: int):
    """Yield (window, honest uploads) of real training with the aggregate applied each window."""
    torch.manual_seed(seed)
    model = build_model(hp.model)
    workers = [copy.deepcopy(model) for _ in range(miners)]
    opts = [make_optimizer(m, hp.train) for m in workers]
    comps = [Compressor(hp.compression) for _ in range(miners)]
    for w in range(windows):
        ups = []
        for uid in range(miners):
            m = workers[uid]
            m.load_state_dict(model.state_dict())
            pages = ds.layout.pages(w, uid, hp.pages_per_window)
            data = batches(ds.sequences(pages), hp.train.batch_size, hp.train.inner_steps)
            start = snapshot(m)
            t0 = time.perf_counter()
            train_steps(m, opts[uid], data, hp.train, start_step=w * hp.train.inner_steps)
            TRAIN_SECONDS.append(time.perf_counter() - t0)
            ups.append(as_upload(comps[uid].compress(pseudo_gradient(start, m)), w, uid, pages))
        sparse_outer_step(model, [u.delta.sparse() for u in ups], lr=hp.outer.lr)
        yield w, ups


def spread(xs: list[float]) -> dict:
    if not xs:
        return {}
    return {
        "min": round(min(xs), 4),
        "mean": round(statistics.mean(xs), 4),
        "max": round(max(xs), 4),
        "n": len(xs),
    }


def measure_honest(hp: HParams, miners: int, windows: int, seed: int) -> dict:
    rules = CopyRules()
    gen = torch.Generator().manual_seed(seed)
    pair_ov, pair_sim, loo, to_agg = [], [], [], []
    honest_flags: list[str] = []
    attack_stats: dict[str, dict[str, list]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ds = dataset(hp, Path(tmp) / "ds")
        last: list[Upload] = []
        for w, ups in honest_windows(hp, ds, miners, windows, seed):
            flats = [flatten(u) for u in ups]
            for a, b in itertools.combinations(flats, 2):
                ov, sim = shared_overlap_and_cosine(a, b)
                pair_ov.append(ov)
                pair_sim.append(sim)
            salt = window_salt("bench", w)
            by_uid = {u.uid: u for u in ups}
            agg_sketch = aggregate_sketch(last, rules, salt)
            res = screen_window(
                w,
                by_uid,
                layout=ds.layout,
                replays=ReplayMemory(1),
                rules=rules,
                salt=salt,
                aggregate=agg_sketch,
            )
            honest_flags += [f"w{w} uid {u}: {r}" for u, r in res.rejected.items()]
            prints = list(res.prints.values())
            for f in mix_scores(prints, res.clusters, agg_sketch).values():
                loo.append(f.loo_cosine)
                if f.aggregate_cosine is not None:
                    to_agg.append(f.aggregate_cosine)
            for name, delta in attacks(hp, ups, last, gen).items():
                uid = miners
                up = as_upload(delta, w, uid, ds.layout.pages(w, uid, hp.pages_per_window))
                r = screen_window(
                    w,
                    {**by_uid, uid: up},
                    layout=ds.layout,
                    replays=ReplayMemory(1),
                    rules=rules,
                    salt=salt,
                    aggregate=agg_sketch,
                )
                st = attack_stats.setdefault(name, {"flagged": [], "honest_flagged": [], "fig": []})
                linked = [c.uids for c in r.clusters if uid in c.uids]
                verdict = r.rejected.get(uid)
                st["flagged"].append(
                    str(verdict) if verdict else f"cluster {linked[0]}" if linked else "not flagged"
                )
                st["honest_flagged"] += [u for u in r.rejected if u != uid]
                sc = mix_scores(list(r.prints.values()), r.clusters, agg_sketch)[uid]
                best = max(shared_overlap_and_cosine(flatten(up), f) for f in flats)
                st["fig"].append(
                    {
                        "loo_cos": round(sc.loo_cosine, 3),
                        "agg_cos": None
                        if sc.aggregate_cosine is None
                        else round(sc.aggregate_cosine, 3),
                        "best_overlap": round(best[0], 3),
                        "best_sim": round(best[1], 3),
                    }
                )
            last = ups
    return {
        "preset": hp.name,
        "miners": miners,
        "windows": windows,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "honest_pair_overlap": spread(pair_ov),
        "honest_pair_similarity": spread(pair_sim),
        "honest_loo_cosine": spread(loo),
        "honest_last_aggregate_cosine": spread(to_agg),
        "honest_flagged": honest_flags,
        "attacks": attack_stats,
        "rules": vars(rules) if hasattr(rules, "__dict__") else str(rules),
    }


def eval_vs_train(hp: HParams, seed: int, miners: int = 2) -> dict:
    """The judge's measurement per upload (``Measurer``: the window's control pool losses
    spread over its uploads, plus each upload's own) vs one honest inner loop (goal <= 0.10)."""
    from template.validator.args import ValidatorConfig
    from template.validator.measure import Measurer

    cfg = ValidatorConfig()
    TRAIN_SECONDS.clear()
    shared_s, own_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        ds = dataset(hp, Path(tmp) / "ds")
        model = build_model(hp.model)
        ms = Measurer(
            model,
            ds,
            own=cfg.eval_own_seqs,
            control=cfg.eval_control_seqs,
            salt="bench",
            control_pool=cfg.eval_control_pool,
        )
        for w, ups in honest_windows(hp, ds, miners, 1, seed):
            t0 = time.perf_counter()
            ms.begin_window(w, ups, 1.0)
            shared_s.append((time.perf_counter() - t0) / len(ups))
            for up in ups:
                t0 = time.perf_counter()
                ms.measure(up)
                own_s.append(time.perf_counter() - t0)
    per_upload = statistics.mean(shared_s) + statistics.mean(own_s)
    train = statistics.mean(TRAIN_SECONDS)
    return {
        "miner_train_seconds_per_upload": round(train, 3),
        "validator_measure_seconds_per_upload": round(per_upload, 4),
        "of_which_shared_per_upload": round(statistics.mean(shared_s), 4),
        "ratio": round(per_upload / train, 4),
        "ratio_goal": 0.10,
        "own_seqs": cfg.eval_own_seqs,
        "control_seqs": cfg.eval_control_seqs,
        "control_pool": cfg.eval_control_pool,
        "uploads_per_window": miners,
    }
