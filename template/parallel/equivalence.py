"""One process versus N ranks on the same pages and seed: the check behind the CPU tests and
``scripts/bench_fsdp.py``.

Both sides build the tiny (or any) preset's initial model, train window ``w`` for ``steps``
inner steps, compress (error feedback), train window ``w + 1`` (the live weights carry on,
``training.overlap``) with window ``w``'s outer step (their own compressed delta) arriving
after its first step, compress again and apply window ``w + 1``'s outer step. Rank 0 of the
sharded run writes what it got (the gathered fp32 deltas, the wire tensors of both uploads,
the global model) to a safetensors file; ``compare`` reports how far the two runs are apart.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from template.hparams import HParams, load_hparams
from template.miner.trainer import Trainer
from template.training.compression import CompressedDelta, Compressor, decode, encode
from template.training.model import build_model, shapes_of
from template.training.outer import sparse_outer_step
from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.training.wire import Upload
from template.validator.measure import Measurer, collect_measurements, measure_each

from .checkpoint import load_sharded, save_sharded
from .compress import ShardedCompressor, all_gather_varlen
from .config import ParallelConfig
from .dist import close_distributed, free_port, init_distributed, leave_spawned_rank
from .launch import rank_env
from .shard import flat_range, local
from .trainer import ShardedTrainer
from .validator import ShardedMeasurerFactory, follow_rank0


@dataclass(frozen=True)
class Plan:
    """What both sides run."""

    preset: str
    dataset: str
    uid: int = 3
    window: int = 5
    steps: int = 2
    world: int = 2
    micro: int = 4  # micro-batch on both sides: 2 per rank, gradients synced once per step

    def hparams(self) -> HParams:
        return load_hparams(self.preset)


def _flatten(prefix: str, wire: dict[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    out = {f"{prefix}.{k}": v.contiguous() for k, v in wire.items()}
    out[f"{prefix}.golomb_m"] = torch.tensor([m])
    return out


def _record(deltas: list, uploads: list[CompressedDelta], globals_: dict, hp: HParams) -> dict:
    out: dict[str, torch.Tensor] = {}
    for i, (d, comp) in enumerate(zip(deltas, uploads, strict=True)):
        out |= {f"delta{i}.{n}": t.reshape(-1).contiguous() for n, t in d.items()}
        out |= _flatten(f"upload{i}", *encode(comp, hp.compression))
    out |= {f"global.{n}": t.reshape(-1).contiguous() for n, t in globals_.items()}
    return out


def run_single(plan: Plan) -> dict[str, torch.Tensor]:
    """The single-process reference (the same micro-batches, one thread like each rank: the
    same matrix shapes and kernels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _single(plan)
    finally:
        torch.set_num_threads(threads)


def _single(plan: Plan) -> dict[str, torch.Tensor]:
    hp = plan.hparams()
    torch.manual_seed(0)
    ds = PageDataset(TokenStream(Path(plan.dataset)), hp)
    micro = plan.micro
    trainer = Trainer(
        hp, build_model(hp.model), ds, plan.uid, micro_batch_size=micro, max_steps=plan.steps
    )
    comp = Compressor(hp.compression)
    deltas, uploads = [], []

    def outer(i: int) -> None:  # the outer step with upload i, on both models
        step = [uploads[i].sparse()]
        trainer.apply_outer(
            lambda m: len(
                sparse_outer_step(m, step, lr=hp.outer.lr, clip_to_median=hp.outer.clip_to_median)
            )
        )

    for i, w in enumerate((plan.window, plan.window + 1)):
        res = trainer.train_window(w, _at_poll(MID_WINDOW, lambda: outer(0)) if i else _never)
        deltas.append(res.delta)
        uploads.append(comp.compress(res.delta))
    outer(1)
    globals_ = {n: p.detach().clone() for n, p in trainer.global_model.named_parameters()}
    record = _record(deltas, uploads, globals_, hp) | {"pages": torch.tensor(res.pages)}
    measurer = Measurer(trainer.global_model, ds, **MEASURE)
    first = _measure(measurer, plan, record, hp)
    _change(trainer.global_model, record, hp)
    measurer.forget()
    record["eval"] = torch.cat([first, _measure(measurer, plan, record, hp)])
    return record


MEASURE = {"own": 4, "control": 4, "salt": "equivalence"}
MID_WINDOW = 1  # window w's outer step arrives before this step of window w + 1


def _never() -> bool:
    return False


def _at_poll(k: int, fn: Callable[[], None]) -> Callable[[], bool]:
    """A ``should_end`` (polled before every step) that never ends the window but runs ``fn``
    before step ``k``: an outer step arriving mid-window, as on the live network."""
    calls = itertools.count()

    def should_end() -> bool:
        if next(calls) == k:
            fn()
        return False

    return should_end


def _measure(measurer: Measurer, plan: Plan, record: dict, hp: HParams) -> torch.Tensor:
    """The validator's measurements of both recorded uploads (as two uids claiming one half
    of the window's pages each: a page both claim is nobody's own; each upload is the other's
    leave-one-out reference), flattened in order."""
    pages = tuple(int(p) for p in record["pages"])
    half = (len(pages) + 1) // 2
    claims = (pages[:half], pages[half:])
    uploads = {
        plan.uid + i: Upload(
            plan.window, plan.uid + i, "-", 0, "-", 1, _decoded(record, i, hp), claims[i]
        )
        for i in (0, 1)
    }
    got, failed, _ = collect_measurements(
        measure_each(measurer, plan.window, uploads, sorted(uploads), hp.outer.lr / 2, {})
    )
    if failed:
        raise RuntimeError(f"measurement failed: {failed}")
    parts = []
    for uid in sorted(got):
        m = got[uid]
        parts += [m.own_excess, m.control_excess, m.control_gain, m.own_gain]
        parts.append(torch.tensor([m.control_before]))
    return torch.cat([p.double() for p in parts])


def sharded_worker(rank: int, plan: Plan, port: int, out: str, reference: str) -> None:
    """One rank of the sharded run (target of ``torch.multiprocessing.start_processes``)."""
    os.environ.update(rank_env(rank, plan.world, port))  # what torchrun sets
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    try:
        hp = plan.hparams()
        torch.manual_seed(0)
        ds = PageDataset(TokenStream(Path(plan.dataset)), hp)
        cfg = ParallelConfig(mixed_precision=False)
        trainer = ShardedTrainer(
            hp,
            build_model(hp.model),
            ds,
            plan.uid,
            ctx,
            parallel=cfg,
            max_steps=plan.steps,
            micro_batch_size=plan.micro,
        )
        record = _drive(trainer, plan, hp, reference) if ctx.is_main else trainer.follow()
        exact = _compress_reference(reference, hp, ctx)
        result, mirrored = _measure_sharded(trainer, record, plan, hp, ds, reference, ctx)
        resumed = _resume_matches(trainer, hp, ds, plan, ctx, Path(out).parent / "state")
        if ctx.is_main:
            flags = {"meta.resumed": int(resumed), "meta.mirrored": int(mirrored)}
            record |= exact | {"eval": result} | {k: torch.tensor([v]) for k, v in flags.items()}
            save_file(record, out)
    finally:
        dist.barrier()
        close_distributed()
    leave_spawned_rank()


def _drive(trainer: ShardedTrainer, plan: Plan, hp: HParams, reference: str) -> dict:
    """Rank 0: two windows with the outer steps the reference run applied (its own uploads),
    at the same points: window w's mid-way through window w + 1, window w + 1's after it."""
    ref = load_file(reference)
    deltas, uploads = [], []

    def outer(i: int) -> None:
        trainer.apply_deltas([_decoded(ref, i, hp)])

    for i, w in enumerate((plan.window, plan.window + 1)):
        res = trainer.train_window(w, _at_poll(MID_WINDOW, lambda: outer(0)) if i else _never)
        deltas.append(trainer.gathered("delta"))
        uploads.append(res.compressed)
    outer(1)
    record = _record(deltas, uploads, trainer.gathered("global"), hp)
    record["meta.gathered_tensors"] = torch.tensor([trainer.compressor.gathered])
    trainer.shutdown()
    return record


def _measure_sharded(trainer, record, plan, hp, ds, reference, ctx) -> tuple[torch.Tensor, bool]:
    """The reference's uploads measured the way ``torchrun`` runs a validator
    (``parallel.validator``): rank 0's full CPU model is the ``source`` of a freshly sharded
    replica; after the first measurement the source takes an outer step, so the second one
    checks that a change reaches the shards. Afterwards the shards mirror the source exactly."""
    if not ctx.is_main:
        replica = follow_rank0(argparse.Namespace(hparams=plan.preset), ctx)
        return None, _mirrors(replica.model, None, ctx)
    source = build_model(hp.model)
    with torch.no_grad():
        for n, p in source.named_parameters():
            p.copy_(record[f"global.{n}"].view(p.shape))
    factory = ShardedMeasurerFactory(ctx, hp)
    measurer = factory(source, ds, device="cpu", **MEASURE)
    try:
        ref = load_file(reference)
        first = _measure(measurer, plan, ref, hp)
        _change(source, ref, hp)
        measurer.forget()
        result = torch.cat([first, _measure(measurer, plan, ref, hp)])
    finally:
        factory.release()
    return result, _mirrors(measurer.model, source, ctx)


def _change(model: torch.nn.Module, record: dict, hp: HParams) -> None:
    """The window's outer step with the recorded first upload (what a validator's model sees)."""
    step = [_decoded(record, 0, hp).sparse()]
    sparse_outer_step(model, step, lr=hp.outer.lr, clip_to_median=hp.outer.clip_to_median)


def _mirrors(model: torch.nn.Module, source: torch.nn.Module | None, ctx) -> bool:
    """Whether the sharded ``model`` equals rank 0's ``source`` bit for bit (collective)."""
    src = dict(source.named_parameters()) if ctx.is_main else {}
    same = True
    for n, p in model.named_parameters():
        full = all_gather_varlen(local(p).detach().reshape(-1), ctx)
        if ctx.is_main:
            same = same and torch.equal(full, src[n].detach().reshape(-1).to(full.dtype))
    return same


def _resume_matches(trainer, hp, ds, plan, ctx, folder: Path) -> bool:
    """Save sharded, load into a fresh trainer: model, optimizer, global copy and error
    feedback come back exactly (collective)."""
    save_sharded(folder, trainer, {"last_window": plan.window + 1})
    fresh = ShardedTrainer(
        hp, build_model(hp.model), ds, plan.uid, ctx, parallel=ParallelConfig(mixed_precision=False)
    )
    position = load_sharded(folder, fresh)
    ok = position == {"last_window": plan.window + 1}
    pairs = [
        (trainer.global_shards, fresh.global_shards),
        (trainer.compressor.error, fresh.compressor.error),
        (trainer.model.state_dict(), fresh.model.state_dict()),
    ]
    for a, b in pairs:
        ok = ok and set(a) == set(b) and all(torch.equal(_loc(a[k]), _loc(b[k])) for k in a)
    opt_a, opt_b = trainer.optimizer.state_dict()["state"], fresh.optimizer.state_dict()["state"]
    ok = ok and all(
        torch.equal(_loc(opt_a[i][k]), _loc(opt_b[i][k])) for i in opt_a for k in opt_a[i]
    )
    flag = torch.tensor([int(ok)])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag)


def _loc(t: torch.Tensor) -> torch.Tensor:
    return local(t) if isinstance(t, torch.Tensor) else t


def _compress_reference(path: str, hp: HParams, ctx) -> dict[str, torch.Tensor]:
    """The single process's first delta, cut into this rank's shards and compressed by a fresh
    ``ShardedCompressor``: with identical input the upload must be identical, bit for bit."""
    ref = load_file(path)
    shapes = shapes_of(hp.model)
    deltas = {}
    for name, shape in shapes.items():
        rng = flat_range(shape, ctx.rank, ctx.world)
        deltas[name] = ref[f"delta0.{name}"][rng.start : rng.stop]
    comp = ShardedCompressor(hp.compression, ctx).compress(deltas, shapes)
    return _flatten("exact0", *encode(comp, hp.compression)) if ctx.is_main else {}


def run_sharded(plan: Plan, out: Path, single: dict) -> dict[str, torch.Tensor]:
    """Start ``plan.world`` CPU ranks (gloo) and return rank 0's record; ``single`` is the
    reference record (its first delta is also compressed on shards)."""
    ref = Path(out).with_suffix(".reference.safetensors")
    keep = ("delta0.", "upload", "pages")
    save_file({k: v for k, v in single.items() if k.startswith(keep)}, str(ref))
    args = (plan, free_port(), str(out), str(ref))
    mp.start_processes(sharded_worker, args=args, nprocs=plan.world, start_method="spawn")
    return load_file(str(out))


def _decoded(record: dict, i: int, hp: HParams) -> CompressedDelta:
    prefix = f"upload{i}."
    wire = {k[len(prefix) :]: v for k, v in record.items() if k.startswith(prefix)}
    m = int(wire.pop("golomb_m")[0])
    return decode(wire, shapes_of(hp.model), hp.compression, m)


def compare(single: dict, sharded: dict, hp: HParams, atol: float = 1e-5) -> dict:
    """How far apart the two runs are.

    Both runs apply the reference's uploads as outer steps, so the global weights must agree
    to the last bit (``global_max_abs_diff``) and window w + 1 starts from the same model.
    ``compress_exact``: the same delta compressed on shards gives byte-identical wire tensors.
    ``upload_decodes``: the uploads of the two runs decode to the same indices and codes (fp
    noise in training can flip a near-tie of top-k; ``index_agreement`` is the fraction of kept
    positions both runs chose). Codebooks are means of the kept values and may differ in the
    last bits (``codebook_max_diff``)."""

    def worst(prefix: str) -> float:
        return max(
            float((v.double() - sharded[k].double()).abs().max())
            for k, v in single.items()
            if k.startswith(prefix)
        )

    exact = [k for k in single if k.startswith("upload0.")]
    compress_exact = all(torch.equal(single[k], sharded["exact0." + k[8:]]) for k in exact)
    same, book, agree, kept = True, 0.0, 0, 0
    for i in (0, 1):
        a, b = _decoded(single, i, hp), _decoded(sharded, i, hp)
        for name, ta in a.tensors.items():
            tb = b.tensors[name]
            same = same and torch.equal(ta.indices, tb.indices) and torch.equal(ta.codes, tb.codes)
            book = max(book, float((ta.codebook - tb.codebook).abs().max()))
            agree += int(torch.isin(ta.indices, tb.indices).sum())
            kept += ta.indices.numel()
    out = {
        "max_abs_diff": worst("delta"),
        "global_max_abs_diff": worst("global"),
        "eval_max_abs_diff": float((single["eval"] - sharded["eval"]).abs().max()),
        "codebook_max_diff": book,
        "upload_decodes": same,
        "index_agreement": agree / max(kept, 1),
        "compress_exact": compress_exact,
        "resume_exact": bool(sharded["meta.resumed"][0]),
        "measure_restores": bool(sharded["meta.mirrored"][0]),
        "gathered_tensors": int(sharded["meta.gathered_tensors"][0]),
    }
    out["equivalent"] = (
        out["max_abs_diff"] <= atol
        and out["eval_max_abs_diff"] <= atol
        and compress_exact
        and out["resume_exact"]
        and out["measure_restores"]
        and out["index_agreement"] >= 0.999
    )
    return out


def dump(result: dict) -> str:
    return json.dumps(result, sort_keys=True)
