"""Benchmark SparseLoCo compression + index coding + signed wire format; prints one JSON object.

    python scripts/bench_compression.py --json [--device cpu|cuda] [--case 150m|tiny|both]

Uses the real parameter shapes of the "150m" preset (~134M) and the "tiny" preset (~1.07M),
with random normal deltas, so metadata overhead at small scale is visible. Sizes are of the whole serialized upload (safetensors
header, JSON header, signature, codebooks), divided by the number of parameters.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.hparams import CompressionConfig, load_hparams  # noqa: E402
from template.signing import dev_keypair  # noqa: E402
from template.training.compression import Compressor, chunk_layout  # noqa: E402
from template.training.model import shapes_of  # noqa: E402
from template.training.wire import decode_upload, encode_upload, upload_size_cap  # noqa: E402

CASES = ("150m", "tiny")  # the presets whose real parameter shapes are measured


def index_bound_bits(shapes: dict[str, tuple[int, ...]], cfg: CompressionConfig) -> float:
    """log2 of the number of possible index sets: the least any index code can spend."""
    total = 0.0
    for shape in shapes.values():
        sizes, counts = chunk_layout(math.prod(shape), cfg.chunk, cfg.topk)
        for n, k in zip(sizes.tolist(), counts.tolist(), strict=True):
            total += (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(
                2
            )
    return total


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_case(name: str, device: str, seed: int) -> dict:
    cfg = CompressionConfig()
    shapes = shapes_of(load_hparams(name).model)
    params = sum(math.prod(s) for s in shapes.values())
    gen = torch.Generator(device=device).manual_seed(seed)
    compressor = Compressor(cfg)
    key = dev_keypair("//Alice")
    # Two windows so the error-feedback buffer is non-trivial in the measured one.
    for _window in range(2):
        deltas = {n: torch.randn(s, generator=gen, device=device) * 1e-3 for n, s in shapes.items()}
        _sync(device)
        t0 = time.perf_counter()
        delta = compressor.compress(deltas)
        _sync(device)
        compress_s = time.perf_counter() - t0
        del deltas
    t0 = time.perf_counter()
    blob = encode_upload(delta, window=7, uid=3, hparams_hash="0" * 64, config=cfg, key=key)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    upload = decode_upload(
        blob,
        max_bytes=upload_size_cap(shapes, cfg),
        expected={"window": 7, "uid": 3, "hotkey": key.ss58_address},
        param_shapes=shapes,
        config=cfg,
    )
    decode_s = time.perf_counter() - t0
    exact = all(
        torch.equal(a.indices.cpu(), upload.delta.tensors[n].indices)
        and torch.equal(a.codes.cpu(), upload.delta.tensors[n].codes)
        and torch.equal(a.codebook.cpu(), upload.delta.tensors[n].codebook)
        for n, a in delta.tensors.items()
    )
    from safetensors.torch import load

    parts = {k: v.numel() * v.element_size() * 8 for k, v in load(blob).items()}
    n_idx = sum(t.indices.numel() for t in delta.tensors.values())
    index_bits = parts["unary"] + parts["prefix"] + parts["ext"]
    total_bits = len(blob) * 8
    metadata_bits = total_bits - index_bits - parts["codes"]
    bound = index_bound_bits(shapes, cfg)
    return {
        "case": name,
        "params": params,
        "tensors": len(shapes),
        "device": device,
        "density": n_idx / params,
        "value_bits": cfg.value_bits,
        "golomb_m": upload.golomb_m,
        "bytes": len(blob),
        "bits_per_param": total_bits / params,
        "index_bits_per_param": index_bits / params,
        "value_bits_per_param": parts["codes"] / params,
        "metadata_bits": metadata_bits,
        "metadata_bits_per_param": metadata_bits / params,
        "codebook_bits": parts["codebook"],
        "bits_per_index": index_bits / n_idx,
        "index_bound_bits_per_index": bound / n_idx,
        "index_bound_bits_per_param": bound / params,
        "compress_mparams_per_s": params / compress_s / 1e6,
        "encode_mparams_per_s": params / encode_s / 1e6,
        "decode_mparams_per_s": params / decode_s / 1e6,
        "roundtrip_exact": bool(exact),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--json", action="store_true", help="print one JSON object (the default output anyway)"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--case", choices=("150m", "tiny", "both"), default="both")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = ["150m", "tiny"] if args.case == "both" else [args.case]
    results = {n: run_case(n, args.device, args.seed) for n in names}
    out = dict(results[names[0]])
    out.update(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        machine=platform.machine(),
        gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        cases=results,
    )
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
