"""Small fixed-size summaries of an upload, so copy and mix checks stay linear in uploads.

An upload is a sparse vector over every model coordinate: ``flatten`` gives its global
indices (tensor offset + flat index, tensors in name order) and values. From them:

- ``minhash``: a one-permutation MinHash of the index set (``bins`` minima of a salted
  64-bit hash): two uploads agree in a bin with probability ~ the Jaccard similarity of
  their index sets, which lets LSH banding find near-duplicate pairs without comparing
  every pair;
- ``count_sketch``: the values hashed into ``width`` signed buckets; inner products (and so
  cosines) of sketches estimate those of the full vectors, and sums of sketches are sketches
  of sums (the leave-one-out mix check).

Hashes are keyed by a salt the validator derives per window from its secret (secret.py), so
a miner cannot shape an upload to dodge one validator's buckets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from template.training.wire import Upload

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def salt_of(*parts: object) -> int:
    """A 64-bit salt from any printable parts (e.g. validator hotkey, window, purpose)."""
    data = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


def mix64(x: np.ndarray, salt: int) -> np.ndarray:
    """A salted 64-bit mixing hash (splitmix64 finaliser) of non-negative int64 keys."""
    with np.errstate(over="ignore"):
        h = x.astype(np.uint64) ^ np.uint64(salt)
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        return h ^ (h >> np.uint64(31))


def tensor_offsets(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """Start of each tensor (name order) in the model's flat coordinate space."""
    out: dict[str, int] = {}
    pos = 0
    for name in sorted(shapes):
        out[name] = pos
        n = 1
        for d in shapes[name]:
            n *= int(d)
        pos += n
    return out


@dataclass(frozen=True)
class FlatUpload:
    """An upload as one sparse vector: ascending global indices and float32 values."""

    indices: np.ndarray  # int64, ascending, unique
    values: np.ndarray  # float32

    @property
    def nnz(self) -> int:
        return int(self.indices.size)


def flatten(upload: Upload) -> FlatUpload:
    """The upload's sparse vector over all model coordinates (tensor order: by name).

    Values are dequantised in one numpy pass over every tensor (the same float32 values as
    ``CompressedTensor.values``): per-tensor torch calls cost more than the work here."""
    tensors = upload.delta.tensors
    if not tensors:
        return FlatUpload(np.zeros(0, np.int64), np.zeros(0, np.float32))
    offsets = tensor_offsets({n: t.shape for n, t in tensors.items()})
    names = sorted(tensors)
    parts = [tensors[n] for n in names]
    idx = np.concatenate(
        [
            t.indices.cpu().numpy().astype(np.int64) + offsets[n]
            for n, t in zip(names, parts, strict=True)
        ]
    )
    codes = np.concatenate([t.codes.cpu().numpy() for t in parts]).astype(np.int64)
    # one row per tensor: every codebook has 2 ** (value_bits - 1) levels (wire.py checks)
    table = np.stack([t.codebook.cpu().numpy().astype(np.float32) for t in parts])
    which = np.repeat(np.arange(len(parts)), [t.codes.numel() for t in parts])
    sign = np.where(codes & 1, np.float32(-1.0), np.float32(1.0))
    return FlatUpload(idx, table[which, codes >> 1] * sign)


def minhash(indices: np.ndarray, salt: int, bins: int = 128) -> np.ndarray:
    """One-permutation MinHash: per bin (top bits of the hash) the smallest hash; empty bins
    hold the maximum value (they match nothing real). ``bins`` must be a power of two."""
    if bins & (bins - 1) or bins < 2:
        raise ValueError("bins must be a power of two >= 2")
    out = np.full(bins, np.iinfo(np.uint64).max, dtype=np.uint64)
    if indices.size == 0:
        return out
    h = mix64(indices, salt)
    shift = np.uint64(64 - (bins.bit_length() - 1))
    np.minimum.at(out, (h >> shift).astype(np.intp), h)  # linear; a sort was 3x the cost
    return out


def minhash_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of non-empty bins where two signatures agree (estimates Jaccard)."""
    full = np.iinfo(np.uint64).max
    used = (a != full) | (b != full)
    return float(((a == b) & used).sum() / max(1, int(used.sum())))


def count_sketch(flat: FlatUpload, salt: int, width: int) -> np.ndarray:
    """The values hashed into ``width`` signed buckets (float32)."""
    if flat.nnz == 0:
        return np.zeros(width, dtype=np.float32)
    h = mix64(flat.indices, salt)
    bucket = (h % np.uint64(width)).astype(np.int64)
    sign = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0)
    return np.bincount(bucket, weights=sign * flat.values, minlength=width).astype(np.float32)


def l2_norm(flat: FlatUpload) -> float:
    """The delta's L2 norm (non-finite when any value is)."""
    v = flat.values.astype(np.float64)
    return float(np.sqrt(np.dot(v, v)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    na, nb = float(np.dot(a, a)), float(np.dot(b, b))
    return float(np.dot(a, b) / np.sqrt(na * nb)) if na > 0 and nb > 0 else 0.0


def shared_overlap_and_cosine(a: FlatUpload, b: FlatUpload) -> tuple[float, float]:
    """(shared indices / the smaller index set, cosine of the values on shared indices)."""
    if a.nnz == 0 or b.nnz == 0:
        return 0.0, 0.0
    _, ia, ib = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    overlap = ia.size / min(a.nnz, b.nnz)
    return overlap, cosine(a.values[ia].astype(np.float64), b.values[ib].astype(np.float64))
