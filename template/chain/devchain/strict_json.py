"""Strict JSON for request bodies: what a chain node should accept, and nothing else.

Refused, each with a message naming the problem: ``NaN``/``Infinity``, duplicate keys (a
signed body must mean one thing), nesting deeper than ``MAX_DEPTH``, and numbers longer
than ``MAX_NUMBER_CHARS`` characters (no 400-digit integers reaching arithmetic).
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 16
MAX_NUMBER_CHARS = 40


class StrictJSONError(ValueError):
    """The body is not strict JSON; the message says why."""


def _depth(text: str) -> int:
    """Deepest bracket nesting outside strings (scanned before parsing: no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _constant(name: str):
    raise StrictJSONError(f"{name} is not a JSON number")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise StrictJSONError(f"number with {len(text)} characters (limit {MAX_NUMBER_CHARS})")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise StrictJSONError(f"number with {len(text)} characters (limit {MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text[:20]} is out of range")
    return value


def loads_strict(raw: bytes | str):
    """Parse ``raw`` or raise StrictJSONError with a clear message."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as e:
        raise StrictJSONError(f"body is not UTF-8: {e}") from None
    if _depth(text) > MAX_DEPTH:
        raise StrictJSONError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_constant,
            parse_int=_int,
            parse_float=_float,
        )
    except StrictJSONError:
        raise
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise StrictJSONError(f"body is not valid JSON: {e}") from None
