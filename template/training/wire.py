"""The miner upload on the wire: a signed envelope around the compressed pseudo-gradient.

Header fields: window, uid, hotkey, spec_version, hparams_hash, shapes_sha256 (which
parameter set the streams code), chunk, topk, value_bits, golomb_m, pages (the data pages
the miner trained on, in order) and steps (inner steps taken); the envelope adds kind,
signer (must equal hotkey) and payload_sha256. Tensors: the Golomb streams ``unary``,
``prefix``, ``ext``, the packed value ``codes`` and the float32 ``codebook`` table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from template import SPEC_VERSION
from template.hparams import CompressionConfig
from template.signing import SigningKey
from template.training.compression import (
    CompressedDelta,
    chunk_layout,
    decode,
    encode,
    shapes_digest,
)
from template.training.envelope import Schema, TensorRule, WireError, pack_signed, unpack_signed
from template.training.index_coding import golomb_parameter
from template.training.seal import SEAL_OVERHEAD

logger = logging.getLogger(__name__)

UPLOAD_KIND = "sparseloco-upload"
EXPECTABLE = ("window", "uid", "hotkey", "spec_version", "hparams_hash")
UPLOAD_SCHEMA = Schema(
    kind=UPLOAD_KIND,
    fields={
        "window": int,
        "uid": int,
        "hotkey": str,
        "spec_version": int,
        "hparams_hash": str,
        "shapes_sha256": str,
        "chunk": int,
        "topk": int,
        "value_bits": int,
        "golomb_m": int,
        "pages": list,
        "steps": int,
    },
    tensors={
        "unary": TensorRule("U8", ndim=1),
        "prefix": TensorRule("U8", ndim=1),
        "ext": TensorRule("U8", ndim=1),
        "codes": TensorRule("U8", ndim=1),
        "codebook": TensorRule("F32", ndim=2),
    },
)
MAX_PAGES = 4096  # pages one upload may claim
_HEADER_SLACK = 64 * 1024 + 12 * MAX_PAGES  # safetensors + JSON header + signature, generously


@dataclass(frozen=True)
class Upload:
    """A decoded, verified upload."""

    window: int
    uid: int
    hotkey: str
    spec_version: int
    hparams_hash: str
    golomb_m: int
    delta: CompressedDelta
    pages: tuple[int, ...] = ()  # the pages the miner says it trained on, in order
    steps: int = 0  # inner optimizer steps taken


def encode_upload(
    delta: CompressedDelta,
    *,
    window: int,
    uid: int,
    hparams_hash: str,
    config: CompressionConfig,
    key: SigningKey,
    spec_version: int = SPEC_VERSION,
    pages: Sequence[int] = (),
    steps: int = 0,
) -> bytes:
    """Serialise and sign ``delta`` as the upload of ``key``'s hotkey for ``window``."""
    tensors, m = encode(delta, config)
    header = {
        "window": int(window),
        "uid": int(uid),
        "hotkey": key.ss58_address,
        "spec_version": int(spec_version),
        "hparams_hash": hparams_hash,
        "shapes_sha256": shapes_digest(delta.shapes()),
        "chunk": config.chunk,
        "topk": config.topk,
        "value_bits": config.value_bits,
        "golomb_m": m,
        "pages": [int(p) for p in pages],
        "steps": int(steps),
    }
    return pack_signed(tensors, header, key, kind=UPLOAD_KIND)


def decode_upload(
    blob: bytes,
    *,
    max_bytes: int,
    expected: Mapping[str, Any],
    param_shapes: Mapping[str, tuple[int, ...]],
    config: CompressionConfig,
) -> Upload:
    """Strictly decode and verify an upload. Raises ``WireError`` (and nothing else) on bad input.

    ``expected`` holds the header values the caller requires (any of window, uid, hotkey,
    spec_version, hparams_hash); ``param_shapes`` is the model's parameter set. The two
    halves, ``open_upload`` and ``decode_streams``, can also be called (and timed) apart.
    """
    opened = open_upload(
        blob, max_bytes=max_bytes, expected=expected, param_shapes=param_shapes, config=config
    )
    return decode_streams(opened, param_shapes=param_shapes, config=config)


@dataclass(frozen=True)
class OpenedUpload:
    """An upload whose envelope, signature and header checks passed; streams not yet decoded."""

    header: dict[str, Any]
    tensors: dict[str, Any]


def open_upload(
    blob: bytes,
    *,
    max_bytes: int,
    expected: Mapping[str, Any],
    param_shapes: Mapping[str, tuple[int, ...]],
    config: CompressionConfig,
) -> OpenedUpload:
    """Size cap, envelope, signature, digest and header checks of ``decode_upload``."""
    unknown = set(expected) - set(EXPECTABLE)
    if unknown:
        raise ValueError(f"cannot check {sorted(unknown)}; expected may hold {EXPECTABLE}")
    header, tensors, signer = unpack_signed(blob, max_bytes=max_bytes, schema=UPLOAD_SCHEMA)
    if header["hotkey"] != signer:
        raise WireError("field_mismatch", f"hotkey {header['hotkey']} differs from signer {signer}")
    for name, want in expected.items():
        if header[name] != want:
            raise WireError("field_mismatch", f"{name} is {header[name]!r}, expected {want!r}")
    for name in ("chunk", "topk", "value_bits"):
        if header[name] != getattr(config, name):
            raise WireError(
                "field_mismatch", f"{name} is {header[name]}, this run uses {getattr(config, name)}"
            )
    if header["shapes_sha256"] != shapes_digest(param_shapes):
        raise WireError("field_mismatch", "upload codes a different parameter set (shapes_sha256)")
    pages = header["pages"]
    if len(pages) > MAX_PAGES or not all(type(p) is int and p >= 0 for p in pages):
        raise WireError("bad_value", f"pages must be at most {MAX_PAGES} non-negative integers")
    if len(set(pages)) != len(pages):
        raise WireError("bad_value", "pages must not repeat")
    if header["steps"] < 0:
        raise WireError("bad_value", "steps must be >= 0")
    return OpenedUpload(header, tensors)


def decode_streams(
    opened: OpenedUpload,
    *,
    param_shapes: Mapping[str, tuple[int, ...]],
    config: CompressionConfig,
) -> Upload:
    """The index and value streams of an opened upload, decoded strictly (``WireError``)."""
    header = opened.header
    try:
        delta = decode(opened.tensors, param_shapes, config, header["golomb_m"])
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - a peer's bytes must never crash the node
        raise WireError(
            "malformed", f"could not decode streams ({type(exc).__name__}: {exc})"
        ) from exc
    return Upload(
        window=header["window"],
        uid=header["uid"],
        hotkey=header["hotkey"],
        spec_version=header["spec_version"],
        hparams_hash=header["hparams_hash"],
        golomb_m=header["golomb_m"],
        delta=delta,
        pages=tuple(header["pages"]),
        steps=header["steps"],
    )


def upload_size_cap(param_shapes: Mapping[str, tuple[int, ...]], config: CompressionConfig) -> int:
    """Bytes no honest upload of this parameter set can exceed, sealed or not (``max_bytes``).

    Bounds every chunk's Golomb code for the smallest M the encoder may pick.
    """
    m0 = golomb_parameter(config.topk / config.chunk)
    m_min = max(1, m0 - 6)
    b = (m0 + 6 - 1).bit_length()  # remainder bits (prefix + ext) of the largest candidate M
    bits = 0
    for shape in param_shapes.values():
        numel = 1
        for d in shape:
            numel *= int(d)
        sizes, counts = chunk_layout(numel, config.chunk, config.topk)
        bits += int((sizes // m_min).sum()) + int(counts.sum()) * (1 + b + config.value_bits) + 64
    levels = 1 << (config.value_bits - 1)
    return bits // 8 + 4 * levels * len(param_shapes) + _HEADER_SLACK + SEAL_OVERHEAD
