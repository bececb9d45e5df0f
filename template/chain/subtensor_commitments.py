"""Commitment bytes <-> the Commitments pallet's ``CommitmentInfo``.

A commitment is written as ONE ``Raw<n>`` field (n = len(data) <= 128) through the raw call
``bt.calls.Commitments.set_commitment``. On the way back the SDK's reads give each field as a
decoded variant (``{"Raw5": "0x..."}``) plus a convenience text (``NeuronCommitment.data``:
the bytes as utf-8 when they decode, else ``"0x" + hex``). We rebuild the exact bytes from the
``Raw*`` fields; the text is only a fallback, and it is ambiguous for utf-8 text that itself
looks like ``0x<hex>``. The storage layer therefore starts its commitment with a byte that can
never lead a utf-8 sequence (0x80-0xBF, 0xF8-0xFF), so the text form is always the hex form.
"""

from __future__ import annotations

from typing import Any

from .errors import CommitmentTooLargeError, InvalidRequestError
from .types import MAX_COMMITMENT_BYTES


def commitment_info(data: bytes) -> dict[str, Any]:
    """The ``info`` argument of ``set_commitment`` for ``data`` (checked against the limit)."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidRequestError(f"commitment must be bytes, not {type(data).__name__}")
    if len(data) > MAX_COMMITMENT_BYTES:
        raise CommitmentTooLargeError(
            f"commitment is {len(data)} bytes; the chain stores at most {MAX_COMMITMENT_BYTES}"
        )
    if not data:
        raise InvalidRequestError("refusing to commit an empty commitment")
    return {"fields": [{f"Raw{len(data)}": bytes(data)}]}


def _field_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            return None
    if isinstance(value, list | tuple):
        try:
            return bytes(int(b) for b in value)
        except (TypeError, ValueError):
            return None
    return None


def raw_field_bytes(fields: list) -> bytes | None:
    """Concatenated ``Raw*`` payloads of decoded commitment fields, or None if there are none."""
    out = b""
    found = False
    for entry in fields or []:
        if not isinstance(entry, dict):
            continue
        for variant, value in entry.items():
            if isinstance(variant, str) and variant.startswith("Raw"):
                payload = _field_bytes(value)
                if payload is not None:
                    out += payload
                    found = True
    return out if found else None


def text_to_bytes(text: str) -> bytes:
    """Invert the SDK's commitment text: ``0x``-hex back to bytes, anything else as utf-8."""
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    return text.encode("utf-8")


def commitment_bytes(commitment: Any) -> bytes | None:
    """The committed bytes of an SDK ``NeuronCommitment`` (None when nothing readable)."""
    raw = raw_field_bytes(list(getattr(commitment, "fields", None) or []))
    if raw is not None:
        return raw
    text = getattr(commitment, "data", "") or ""
    return text_to_bytes(text) if text else None
