"""Signed safetensors envelopes: the one strict way any document crosses the network.

A blob is a safetensors file whose ``__metadata__`` holds exactly two strings:

- ``header``: canonical JSON (sorted keys, no spaces, ASCII) of a flat object with the
  document's fields plus three the envelope adds: ``kind`` (what the document is, so a
  signature on one kind can never be replayed as another), ``signer`` (ss58 hotkey) and
  ``payload_sha256`` (over every tensor's name, dtype, shape and bytes);
- ``signature``: the signer's sr25519 signature over the header bytes.

``unpack_signed`` checks the size cap before anything else, parses and validates the
safetensors header itself (a header that lies about sizes or offsets is refused), only then
lets ``safetensors`` read the tensors (never pickle), and verifies schema, digest and
signature. Every failure is a ``WireError`` whose ``reason`` says what was wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from template.signing import SigningKey, sign, verify

logger = logging.getLogger(__name__)

ENVELOPE_KEYS = ("kind", "signer", "payload_sha256")
MAX_HEADER_BYTES = 1 << 24  # a safetensors header larger than this is refused outright

# safetensors dtype names <-> torch dtypes we accept on the wire.
DTYPES: dict[str, torch.dtype] = {
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "BOOL": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class WireError(ValueError):
    """Received bytes are not a valid document. ``reason`` is a short machine-readable code.

    Reasons: truncated, oversized, malformed, bad_dtype, bad_shape, size_mismatch,
    unknown_key, missing_key, bad_type, bad_value, non_finite, index_out_of_range,
    bad_signature, digest_mismatch, field_mismatch.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TensorRule:
    """What one tensor may look like: its dtype name, and optionally its rank and size cap."""

    dtype: str  # safetensors name, e.g. "U8", "F32"
    ndim: int | None = None
    max_numel: int | None = None


@dataclass(frozen=True)
class Schema:
    """The exact header fields (name -> JSON type) and tensors a document kind carries.

    ``extra_tensors``, when set, admits tensors not named in ``tensors`` (e.g. a checkpoint
    keyed by parameter names) under that rule; the caller then checks their names.
    """

    kind: str
    fields: Mapping[str, type]  # int, str, float, bool, list or dict
    tensors: Mapping[str, TensorRule] = field(default_factory=dict)
    extra_tensors: TensorRule | None = None


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding of a JSON value that gets signed."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def payload_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _DTYPE_NAMES:
            raise WireError("bad_dtype", f"tensor {name!r} has unsupported dtype {t.dtype}")
        h.update(canonical_json([name, _DTYPE_NAMES[t.dtype], list(t.shape)]))
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def pack_signed(
    tensors: Mapping[str, torch.Tensor], header: Mapping[str, Any], key: SigningKey, *, kind: str
) -> bytes:
    """Serialise ``tensors`` with ``header`` (+ kind, signer, digest) signed by ``key``."""
    clash = set(ENVELOPE_KEYS) & set(header)
    if clash:
        raise ValueError(f"header keys {sorted(clash)} are set by the envelope; leave them out")
    full = dict(header)
    full["kind"] = kind
    full["signer"] = key.ss58_address
    full["payload_sha256"] = payload_digest(tensors)
    header_bytes = canonical_json(full)
    metadata = {"header": header_bytes.decode("ascii"), "signature": sign(key, header_bytes)}
    cpu = {n: t.detach().to("cpu").contiguous() for n, t in tensors.items()}
    return _st_save(cpu, metadata=metadata)


def unpack_signed(
    blob: bytes,
    *,
    max_bytes: int,
    schema: Schema,
    expected_signer: str | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Strictly decode a blob made by ``pack_signed``; return (header, tensors, signer).

    The returned header holds only the schema's fields (the envelope keys are checked and
    dropped, except that ``signer`` is returned separately). Raises ``WireError`` only.
    """
    try:
        return _unpack(blob, max_bytes=max_bytes, schema=schema, expected_signer=expected_signer)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything unexpected from parsing is a bad blob
        raise WireError("malformed", f"could not parse blob ({type(exc).__name__}: {exc})") from exc


def _unpack(blob: bytes, *, max_bytes: int, schema: Schema, expected_signer: str | None):
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise WireError("malformed", f"expected bytes, got {type(blob).__name__}")
    if len(blob) > max_bytes:
        raise WireError("oversized", f"{len(blob)} bytes exceeds the cap of {max_bytes}")
    blob = bytes(blob)
    entries, metadata = _parse_safetensors_header(blob, schema)
    header, signature = _parse_metadata(metadata, schema)
    signer = header["signer"]
    if expected_signer is not None and signer != expected_signer:
        raise WireError("field_mismatch", f"signed by {signer}, expected {expected_signer}")
    if not verify(signer, canonical_json(header), signature):
        raise WireError("bad_signature", f"signature does not verify for signer {signer}")
    tensors = _st_load(blob)
    if set(tensors) != set(entries):
        raise WireError("malformed", "safetensors returned a different tensor set than its header")
    if payload_digest(tensors) != header["payload_sha256"]:
        raise WireError("digest_mismatch", "payload_sha256 does not match the tensor data")
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WireError("non_finite", f"tensor {name!r} holds NaN or Inf")
    fields = {k: v for k, v in header.items() if k not in ENVELOPE_KEYS}
    return fields, tensors, signer


def _parse_safetensors_header(blob: bytes, schema: Schema) -> tuple[dict[str, dict], dict]:
    if len(blob) < 8:
        raise WireError("truncated", f"blob of {len(blob)} bytes has no safetensors length prefix")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES:
        raise WireError("oversized", f"safetensors header claims {n} bytes")
    if 8 + n > len(blob):
        raise WireError(
            "truncated", f"safetensors header claims {n} bytes, blob has {len(blob) - 8}"
        )
    try:
        raw = json.loads(blob[8 : 8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError("malformed", f"safetensors header is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise WireError("malformed", "safetensors header is not an object")
    metadata = raw.pop("__metadata__", None)
    if metadata is None:
        raise WireError("missing_key", "no __metadata__ (header and signature)")
    data_len = len(blob) - 8 - n
    spans = []
    for name, entry in raw.items():
        rule = schema.tensors.get(name, schema.extra_tensors)
        if rule is None:
            raise WireError(
                "unknown_key", f"unexpected tensor {name!r} in a {schema.kind} document"
            )
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise WireError(
                "malformed", f"tensor {name!r} entry must have dtype, shape, data_offsets"
            )
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype != rule.dtype:
            raise WireError("bad_dtype", f"tensor {name!r} is {dtype}, expected {rule.dtype}")
        if not _int_list(shape) or any(d < 0 for d in shape):
            raise WireError("bad_shape", f"tensor {name!r} has invalid shape {shape!r}")
        if rule.ndim is not None and len(shape) != rule.ndim:
            raise WireError(
                "bad_shape", f"tensor {name!r} has rank {len(shape)}, expected {rule.ndim}"
            )
        numel = math.prod(shape)
        if rule.max_numel is not None and numel > rule.max_numel:
            raise WireError(
                "bad_shape", f"tensor {name!r} has {numel} elements, cap {rule.max_numel}"
            )
        if not _int_list(offsets) or len(offsets) != 2:
            raise WireError("malformed", f"tensor {name!r} has invalid data_offsets {offsets!r}")
        start, end = offsets
        if end - start != numel * DTYPES[dtype].itemsize:
            raise WireError(
                "size_mismatch",
                f"tensor {name!r}: offsets span {end - start} bytes, shape needs {numel * DTYPES[dtype].itemsize}",
            )
        spans.append((start, end, name))
    missing = sorted(set(schema.tensors) - set(raw))
    if missing:
        raise WireError("missing_key", f"missing tensor(s) {missing} in a {schema.kind} document")
    cursor = 0
    for start, end, name in sorted(spans):
        if start != cursor:
            raise WireError(
                "size_mismatch",
                f"tensor {name!r} starts at {start}, expected {cursor} (gap or overlap)",
            )
        cursor = end
    if cursor != data_len:
        reason = "truncated" if cursor > data_len else "size_mismatch"
        raise WireError(reason, f"tensors cover {cursor} bytes, data section has {data_len}")
    return raw, metadata


def _parse_metadata(metadata: Any, schema: Schema) -> tuple[dict[str, Any], str]:
    if not isinstance(metadata, dict) or set(metadata) != {"header", "signature"}:
        keys = sorted(metadata) if isinstance(metadata, dict) else metadata
        raise WireError(
            "malformed", f"__metadata__ must hold exactly header and signature, got {keys!r}"
        )
    text, signature = metadata["header"], metadata["signature"]
    if not isinstance(text, str) or not isinstance(signature, str):
        raise WireError("malformed", "__metadata__ values must be strings")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise WireError("malformed", f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WireError("malformed", "header is not a JSON object")
    expected = dict(schema.fields)
    expected.update({"kind": str, "signer": str, "payload_sha256": str})
    unknown = sorted(set(header) - set(expected))
    if unknown:
        raise WireError("unknown_key", f"unexpected header key(s) {unknown}")
    missing = sorted(set(expected) - set(header))
    if missing:
        raise WireError("missing_key", f"header lacks {missing}")
    for key, typ in expected.items():
        value = header[key]
        ok = isinstance(value, typ) and not (typ in (int, float) and isinstance(value, bool))
        if typ is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise WireError(
                "bad_type", f"header {key!r} must be {typ.__name__}, got {type(value).__name__}"
            )
    if header["kind"] != schema.kind:
        raise WireError(
            "field_mismatch", f"document kind {header['kind']!r}, expected {schema.kind!r}"
        )
    if canonical_json(header).decode("ascii") != text:
        raise WireError("malformed", "header JSON is not in canonical form")
    return header, signature


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise WireError("malformed", f"duplicate JSON key {k!r}")
        out[k] = v
    return out
