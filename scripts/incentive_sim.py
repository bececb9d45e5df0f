"""Miners for the incentive benchmark: honest training on the real training core, and the
adversary classes of issue 15, each producing a signed upload blob for a window.

Used by scripts/bench_incentives.py (and its tests); nothing here is part of a node.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from template.hparams import HParams, hparams_hash, load_hparams
from template.training.compression import CompressedDelta, Compressor
from template.training.corpus import fallback_corpus
from template.training.inner import make_optimizer, train_steps
from template.training.outer import pseudo_gradient, snapshot
from template.training.overlap import LiveOverlap
from template.training.pages import PageDataset
from template.training.shards import TokenStream, write_shards
from template.training.tokenizer import ByteTokenizer
from template.training.wire import decode_upload, encode_upload
from template.validator.sketch import cosine

ROOT = Path(__file__).resolve().parents[1]
CLASSES = (
    "honest",
    "lazy",
    "backdating_copier",
    "same_second_copier",
    "evasive_copier",
    "aggregator",
    "alie",
    "random",
    "wrong_pages",
    "replay",
    "zero",
    "lazy_mixer",
    "full_claim_mixer",
    "coasting_copier",
    "lazy_inflated",
    "amplifier",
    "older_copier",
    "shadow",
    "poacher",
    "split_shadow",
    "lazy_wrong_pages",
)


CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


STDLIB = "stdlib"  # the corpus name of the Python standard library's sources


def preset(name: str) -> HParams:
    """The benchmarks' presets: ``tiny`` as shipped, ``small`` a shrunk tiny for fast runs."""
    hp = load_hparams("tiny")
    if name == "tiny":
        return hp
    return hp.replace(
        **{
            "model.hidden_size": 64,
            "model.intermediate_size": 128,
            "model.num_layers": 2,
            "model.seq_len": 64,
            "train.inner_steps": 8,
            "train.batch_size": 8,
            "data.seqs_per_page": 4,
            "compression.chunk": 1024,
            "compression.topk": 32,
        }
    )


def corpus_text(corpus: Path | str, limit: int) -> str:
    """The first ``limit`` characters of ``corpus``: a UTF-8 text file, or ``STDLIB``, the
    sources a local subnet trains on where shared/data is absent (training.corpus)."""
    if str(corpus) == STDLIB:
        return fallback_corpus(limit)
    return Path(corpus).read_text(encoding="utf-8")[:limit]


def build_dataset(out: Path, limit: int = 1_200_000, corpus: Path | str = CORPUS) -> Path:
    """A byte-level dataset of the first ``limit`` characters of ``corpus`` (``corpus_text``;
    default tinyshakespeare from shared/data) in ``out``; returns the folder."""
    if (out / "manifest.json").is_file():
        return out
    text = corpus_text(corpus, limit)
    tok = ByteTokenizer()
    docs = [tok.encode(text[i : i + 50_000]) + [tok.eot_id] for i in range(0, len(text), 50_000)]
    write_shards(docs, out, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=300_000)
    return out


def open_dataset(folder: Path, hp: HParams) -> PageDataset:
    return PageDataset(TokenStream(folder), hp)


@dataclass
class Trainee:
    """A training miner's private state: live model, optimizer, error feedback."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    compressor: Compressor
    overlap: LiveOverlap = field(default_factory=LiveOverlap)  # train_carried's ``ahead``


def new_trainee(global_model: torch.nn.Module, hp: HParams) -> Trainee:
    m = copy.deepcopy(global_model)
    return Trainee(m, make_optimizer(m, hp.train), Compressor(hp.compression))


def window_batches(
    ds: PageDataset, hp: HParams, window: int, page_uid: int, steps: int
) -> tuple[list[torch.Tensor], list[int]]:
    """The ``steps`` batches of the pages of (window, page_uid) in protocol order, and the
    pages."""
    bs, spp = hp.train.batch_size, hp.data.seqs_per_page
    pages = ds.layout.pages(window, page_uid, -(-steps * bs // spp))
    seqs = ds.sequences(pages)
    return [seqs[i * bs : (i + 1) * bs] for i in range(steps)], pages


def train_from(
    t: Trainee,
    global_model: torch.nn.Module,
    hp: HParams,
    batches: list[torch.Tensor],
    window: int,
    shift: dict[str, torch.Tensor] | None = None,
) -> CompressedDelta:
    """Train ``batches`` from the global model (moved by ``shift`` first, if given) and return
    the compressed delta against the global model (as template/miner does)."""
    with torch.no_grad():
        for p, q in zip(global_model.parameters(), t.model.parameters(), strict=True):
            q.copy_(p)
    start = snapshot(t.model)
    if shift is not None:
        with torch.no_grad():
            params = dict(t.model.named_parameters())
            for name, v in shift.items():
                params[name].add_(v)
    train_steps(t.model, t.optimizer, batches, hp.train, start_step=window * hp.train.inner_steps)
    return t.compressor.compress(pseudo_gradient(start, t.model))


def train_carried(
    t: Trainee,
    previous: dict[str, torch.Tensor] | None,
    global_model: torch.nn.Module,
    hp: HParams,
    batches: list[torch.Tensor],
    window: int,
    arrives_after: int,
) -> CompressedDelta:
    """A live miner's window (template/miner/trainer.py with training/overlap.py): the live
    weights carry on from the last window, the previous window's aggregate (``previous`` ->
    ``global_model``) arrives after ``arrives_after`` of the steps and is applied to the live
    weights, which swap their own last-window progress for it; the delta is this window's
    training only. ``previous`` None (the first window): a window from the global model."""
    live = {n: p for n, p in t.model.named_parameters()}
    now = dict(global_model.named_parameters())
    if previous is None or t.overlap.ahead is None:
        t.overlap.reset()
        previous, arrives_after = None, 0
    with torch.no_grad():  # the global model the window starts from: before the aggregate
        for name, p in live.items():
            p.copy_((previous or now)[name])
    if t.overlap.ahead is not None:  # carrying: live = previous global - ahead
        with torch.no_grad():
            for name, p in live.items():
                p.sub_(t.overlap.ahead[name])
    h = hp.train.inner_steps
    k = min(max(arrives_after, 0), len(batches))
    train_steps(t.model, t.optimizer, batches[:k], hp.train, start_step=window * h)
    if previous is not None:  # the aggregate arrives: applied to the live weights too
        with torch.no_grad():
            for name, p in live.items():
                p.add_(now[name].float() - previous[name].float())
        t.overlap.rebase(t.model)
    train_steps(t.model, t.optimizer, batches[k:], hp.train, start_step=window * h + k)
    delta = t.overlap.end(now, t.model)
    return t.compressor.compress(delta)


def train_window(
    t: Trainee,
    global_model: torch.nn.Module,
    hp: HParams,
    ds: PageDataset,
    window: int,
    page_uid: int,
    steps: int,
    page_window: int | None = None,
) -> tuple[CompressedDelta, list[int]]:
    """Train ``steps`` steps from the global model on the pages of (window, page_uid) in
    protocol order (as template/miner does); return the compressed delta and the pages used."""
    pw = window if page_window is None else page_window
    batches, pages = window_batches(ds, hp, pw, page_uid, steps)
    return train_from(t, global_model, hp, batches, window), pages


def sign(delta: CompressedDelta, hp: HParams, key, uid: int, window: int, pages, steps) -> bytes:
    return encode_upload(
        delta,
        window=window,
        uid=uid,
        hparams_hash=hparams_hash(hp),
        config=hp.compression,
        key=key,
        pages=list(pages),
        steps=steps,
    )


def recompress(dense: dict[str, torch.Tensor], hp: HParams) -> CompressedDelta:
    """Top-k and quantise a dense delta with a fresh compressor (no error feedback)."""
    return Compressor(hp.compression).compress(dense)


def mean_and_spread_dense(dense: list[dict[str, torch.Tensor]]) -> tuple[dict, dict]:
    """Per-coordinate mean and standard deviation of dense deltas."""
    mean, std = {}, {}
    for n in dense[0]:
        stack = torch.stack([d[n] for d in dense])
        mean[n], std[n] = stack.mean(0), stack.std(0, unbiased=False)
    return mean, std


def swap_indices_dense(
    delta: CompressedDelta, share: float, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """``delta`` as dense tensors with ``share`` of each tensor's kept entries moved to random
    other positions (values kept): the evasive copier."""
    out = {}
    for name, t in delta.tensors.items():
        d = t.to_dense().reshape(-1).clone()
        k = int(t.indices.numel() * share)
        if k:
            pick = t.indices[torch.randperm(t.indices.numel(), generator=gen)[:k]]
            vals = d[pick].clone()
            d[pick] = 0
            d[torch.randint(0, d.numel(), (k,), generator=gen)] = vals
        out[name] = d.view(t.shape)
    return out


def random_delta(
    model: torch.nn.Module, hp: HParams, norm: float, gen: torch.Generator
) -> CompressedDelta:
    """A random compressed delta scaled to ``norm`` (an honest upload's size)."""
    noise = {n: torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()}
    delta = recompress(noise, hp)
    have = sum(float(t.values().pow(2).sum()) for t in delta.tensors.values()) ** 0.5
    return scaled(delta, norm / have if have > 0 else 0.0)


def scaled(delta: CompressedDelta, factor: float) -> CompressedDelta:
    """``delta`` with every value times ``factor`` (its 2-bit codebooks scaled): an inflated
    upload, as large as its miner likes."""
    return CompressedDelta(
        {
            n: type(t)(t.shape, t.indices, t.codes, t.codebook * factor)
            for n, t in delta.tensors.items()
        }
    )


def dense_cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Cosine of two dense deltas over all their tensors (the validator's sketch cosine)."""
    flat = lambda d: torch.cat([d[n].reshape(-1).double() for n in sorted(a)]).numpy()  # noqa: E731
    return cosine(flat(a), flat(b))


def lazy_mix(
    own: CompressedDelta, dense: list[dict[str, torch.Tensor]], hp: HParams, below: float
) -> tuple[CompressedDelta, float]:
    """The lazy mixer's upload: its own lazy delta plus the largest share c of the honest
    uploads' mean (c from 1 down to 1/8) whose cosine to their sum stays under ``below``: an
    attacker that reads the others' uploads and tunes the copied part to pass a mix check.
    Returns the upload and c (0: nothing passed or nothing to copy, its own delta alone)."""
    if not dense:
        return own, 0.0
    mine = own.to_dense()
    mean = {n: sum(d[n] for d in dense) / len(dense) for n in dense[0]}
    total = {n: sum(d[n] for d in dense) for n in dense[0]}
    for c in (1.0, 0.75, 0.5, 0.35, 0.25, 0.125):
        mixed = recompress({n: mine[n] + c * mean[n] for n in mine}, hp)
        if dense_cosine(mixed.to_dense(), total) < below:
            return mixed, c
    return own, 0.0


def delta_of_blob(blob: bytes, hp: HParams, shapes) -> CompressedDelta:
    """The delta inside one of this actor's own earlier (signed) uploads."""
    up = decode_upload(
        blob, max_bytes=1 << 30, expected={}, param_shapes=shapes, config=hp.compression
    )
    return up.delta


@dataclass
class Actor:
    """One benchmark miner: its class, chain identity and private state."""

    name: str
    kind: str
    key: object
    uid: int = -1
    trainee: Trainee | None = None
    history: dict[int, bytes] = field(default_factory=dict)  # window -> its signed upload
    own: tuple | None = None  # this window's (delta, pages, steps) before it is mixed
    reveal: tuple[str, bytes] | None = None  # (name, key) of its sealed upload, until revealed
