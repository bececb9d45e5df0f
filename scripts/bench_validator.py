"""Validator cost per window, stage by stage, and how close honest uploads are to each other.

Two modes, each printing one JSON object:

``--uploads 16 64 256`` (default): N signed tiny-preset uploads (synthetic but realistic:
a shared gradient direction plus per-miner noise, compressed with error feedback like a
miner) go through the model-free stages: unseal (seal.py), verify (signature, decode, page
claims), replay, sketch, copies, mix, free riders. Seconds per stage, their total, the share of a tiny
window (blocks_per_window x --block-time) and the growth from the smallest to the largest
N relative to linear (all of these include decoding; ``decode_streams`` is its own stage,
after ``signature_and_header``). ``--memory`` adds the peak of what numpy allocates in the
model-free stages (tracemalloc, in a second pass that is not timed). ``--eval`` adds the evaluation cost of one upload against the
miner's training cost of one window (one evaluator call vs one honest inner loop).

``--honest``: real tiny training: M honest miners for W windows from one model (each with
its own optimizer and error feedback, the aggregate applied every window), plus the
attacks the copy and mix checks target, built from those uploads: an aggregator (the
re-compressed mean of the honest uploads), a 20%-swapped partial copy, a noisy copy, the
last aggregate re-compressed, an ALIE-style shift. Reports, over all windows, the honest
pairs' index overlap and value similarity, honest cosines to the leave-one-out sum and to
the last aggregate, the attacks' figures, and what ``CopyRules()`` flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from template import SPEC_VERSION  # noqa: E402
from template.hparams import hparams_hash, load_hparams  # noqa: E402
from template.signing import dev_keypair  # noqa: E402
from template.training.compression import Compressor  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.training.seal import seal_upload, unseal_upload  # noqa: E402
from template.training.wire import (  # noqa: E402
    decode_streams,
    encode_upload,
    open_upload,
    upload_size_cap,
)
from template.validator.cache import KEEP_WINDOWS, WindowCache, blob_decoder  # noqa: E402
from template.validator.copies import CopyRules, window_salt  # noqa: E402
from template.validator.gather import Candidate  # noqa: E402
from template.validator.replay import ReplayMemory, replay_windows  # noqa: E402
from template.validator.screen import collector_paused, screen_window  # noqa: E402


class FixedLayout:
    """Page assignment stand-in for synthetic uploads: uid u owns pages [8u, 8u + 8)."""

    def pages(self, window: int, uid: int, count: int) -> list[int]:
        return list(range(8 * uid, 8 * uid + count))


def synthetic_blobs(hp, shapes, n: int, window: int, seed: int) -> list[tuple[int, str, bytes]]:
    """(uid, hotkey, signed blob) of ``n`` realistic uploads: common direction + own noise."""
    gen = torch.Generator().manual_seed(seed)
    common = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    out = []
    for uid in range(n):
        key = dev_keypair(f"//bench{uid}")
        comp = Compressor(hp.compression)
        delta = {k: 0.6 * c + torch.randn(c.shape, generator=gen) for k, c in common.items()}
        blob = encode_upload(
            comp.compress(delta),
            window=window,
            uid=uid,
            hparams_hash=hparams_hash(hp),
            config=hp.compression,
            key=key,
            pages=FixedLayout().pages(window, uid, 8),
            steps=hp.train.inner_steps,
        )
        out.append((uid, key.ss58_address, blob))
    return out


def open_and_decode(hp, shapes, blobs, window: int, cap: int):
    """(uploads, wall s, CPU s) of opening every sealed blob and then the two halves of
    ``decode_checked``: ``unseal`` (AES-GCM with the revealed key, seal.py),
    ``signature_and_header`` (size cap, envelope, signature, header fields) and
    ``decode_streams`` (the Golomb index and value streams)."""
    expected = {"window": window, "spec_version": SPEC_VERSION, "hparams_hash": hparams_hash(hp)}
    wall = {"unseal": 0.0, "signature_and_header": 0.0, "decode_streams": 0.0}
    cpu = dict(wall)
    uploads = {}
    with collector_paused():  # as gather.fetch_uploads decodes
        for uid, hotkey, signed in blobs:
            sealed = seal_upload(signed, window=window, hotkey=hotkey)
            tu, cu = time.perf_counter(), time.process_time()
            blob = unseal_upload(sealed.data, sealed.key, window=window, hotkey=hotkey)
            t0, c0 = time.perf_counter(), time.process_time()
            wall["unseal"] += t0 - tu
            cpu["unseal"] += c0 - cu
            opened = open_upload(
                blob,
                max_bytes=cap,
                expected={**expected, "uid": uid, "hotkey": hotkey},
                param_shapes=shapes,
                config=hp.compression,
            )
            t1, c1 = time.perf_counter(), time.process_time()
            uploads[uid] = decode_streams(opened, param_shapes=shapes, config=hp.compression)
            t2, c2 = time.perf_counter(), time.process_time()
            wall["signature_and_header"] += t1 - t0
            wall["decode_streams"] += t2 - t1
            cpu["signature_and_header"] += c1 - c0
            cpu["decode_streams"] += c2 - c1
    return uploads, wall, cpu


def upload_bytes(up) -> int:
    """What a decoded upload holds: indices, value codes and codebooks."""
    ts = up.delta.tensors.values()
    return sum(x.element_size() * x.numel() for t in ts for x in (t.indices, t.codes, t.codebook))


def full_replay_memory(hp, n: int, window: int) -> ReplayMemory:
    """A memory as full as a long run's: n uploads per past window."""
    memory = ReplayMemory(replay_windows(hp))
    for w in range(window):
        for uid in range(n):
            memory.remember(w, uid, (f"{w}-{uid}-c", f"{w}-{uid}-i"))
    return memory


def time_window(hp, shapes, n: int, seed: int, trace: bool = False) -> dict:
    """Seconds per model-free stage for ``n`` uploads of one window; ``trace``: also the peak
    of what numpy allocates in them (tracemalloc, in a second, untimed pass)."""
    window = 7
    rules = CopyRules()
    cap = upload_size_cap(shapes, hp.compression)
    peers = range(min(n, hp.window.peers_per_window))
    # the validator holds the last KEEP_WINDOWS windows of n uploads each, released as its loop
    # releases them (blobs and prints under their own salt): each upload of this window is also
    # compared with them (stale copies); the last one's peers give the mix reference
    cache = WindowCache("bench", rules, blob_decoder(hp, shapes))
    release = {}
    for k, w in enumerate(range(window - KEEP_WINDOWS, window), start=1):
        signed = synthetic_blobs(hp, shapes, n, w, seed + k)
        ups = open_and_decode(hp, shapes, signed, w, cap)[0]
        done = screen_window(
            w,
            ups,
            layout=FixedLayout(),
            replays=ReplayMemory(1),
            rules=rules,
            salt=window_salt("bench", w),
            aggregate=cache.aggregate(w),
            freerider_min_norm=0.05,
            earlier=cache.earlier(w),
        )
        cache.keep(w, [Candidate(u, hk, blob=b, upload=ups[u]) for u, hk, b in signed])
        t0, c0 = time.perf_counter(), time.process_time()
        cache.release(w, peers, done.prints)
        release = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    blobs = synthetic_blobs(hp, shapes, n, window, seed)
    uploads, stages, cpu = open_and_decode(hp, shapes, blobs, window, cap)

    def screen(replays: ReplayMemory):
        return screen_window(
            window,
            uploads,
            layout=FixedLayout(),
            replays=replays,
            rules=rules,
            salt=window_salt("bench", window),
            aggregate=cache.aggregate(window),
            freerider_min_norm=0.05,
            earlier=cache.earlier(window),
        )

    res = screen(full_replay_memory(hp, n, window))
    stages.update(res.seconds)
    cpu.update(res.cpu_seconds)
    stages["release"], cpu["release"] = release["wall"], release["cpu"]  # once per window too
    peak = {}
    if trace:
        held = [c for h in cache.windows.values() for c in h.candidates.values()]
        peak = {
            "held_windows_blob_mb": round(sum(len(c.blob) for c in held) / 2**20, 2),
            "held_windows_decoded_mb": round(
                sum(upload_bytes(c.upload) for c in held if c.upload is not None) / 2**20, 2
            ),
            "window_decoded_mb": round(sum(map(upload_bytes, uploads.values())) / 2**20, 2),
        }
        replays = full_replay_memory(hp, n, window)
        tracemalloc.start()
        screen(replays)
        peak["screen_peak_numpy_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
        tracemalloc.stop()
    return {
        "uploads": n,
        "upload_bytes_mean": round(sum(len(b) for _, _, b in blobs) / n, 1),
        "stages_s": {k: round(v, 4) for k, v in stages.items()},
        "stages_cpu_s": {k: round(v, 4) for k, v in cpu.items()},
        "total_s": round(sum(stages.values()), 4),
        "total_cpu_s": round(sum(cpu.values()), 4),
        "rejected": len(res.rejected),
        "clusters": len(res.clusters),
        **peak,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--uploads", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--block-time", type=float, default=0.5, help="seconds per block (dev chain)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval", action="store_true", help="also measure evaluation vs training cost")
    p.add_argument("--honest", action="store_true", help="measure honest closeness instead")
    p.add_argument("--miners", type=int, default=6)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument(
        "--memory", action="store_true", help="also the model-free stages' peak numpy memory"
    )
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.preset == "small":  # the validator tests' preset (tests/validator/harness.py)
        from tests.validator.harness import small_hparams  # noqa: PLC0415

        hp = small_hparams()
    else:
        hp = load_hparams(a.preset)
    if a.honest:
        from bench_validator_honest import measure_honest  # noqa: PLC0415 - heavy, optional

        print(json.dumps(measure_honest(hp, a.miners, a.windows, a.seed)))
        return 0
    shapes = {n: tuple(p.shape) for n, p in build_model(hp.model, "meta").named_parameters()}
    runs = [time_window(hp, shapes, n, a.seed, a.memory) for n in sorted(a.uploads)]
    window_s = hp.window.blocks_per_window * a.block_time
    lo, hi = runs[0], runs[-1]
    out = {
        "preset": a.preset,
        "threads": a.threads,
        "window_seconds": window_s,
        "runs": runs,
        "share_of_window_at_max": round(hi["total_s"] / window_s, 4),
        "share_of_window_at_max_cpu": round(hi["total_cpu_s"] / window_s, 4),
        "decode_share_of_window_at_max_cpu": round(
            hi["stages_cpu_s"]["decode_streams"] / window_s, 4
        ),
        "growth_vs_linear": round(
            (hi["total_s"] / lo["total_s"]) / (hi["uploads"] / lo["uploads"]), 3
        ),
        "growth_vs_linear_cpu": round(
            (hi["total_cpu_s"] / lo["total_cpu_s"]) / (hi["uploads"] / lo["uploads"]), 3
        ),
        "per_upload_ms": {
            str(r["uploads"]): round(1000 * r["total_s"] / r["uploads"], 2) for r in runs
        },
    }
    if a.eval:
        from bench_validator_honest import eval_vs_train  # noqa: PLC0415

        out["evaluation"] = eval_vs_train(hp, a.seed)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
