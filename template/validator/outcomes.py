"""Typed outcomes of the validator's checks: a rejection is a code (enum) plus a detail.

Every stage (gather, verify, copies, measure, judge) reports why an upload earns nothing
as a ``Rejection``: status, summary and metrics count ``code`` without parsing text, and
logs print ``str(rejection)`` (one line: ``code: detail``). ``MISSING`` is a code too
(no upload at all), so callers test ``r.code is RejectCode.MISSING``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RejectCode(enum.Enum):
    """Why an upload earns nothing this window (value: the stable name used in status files)."""

    MISSING = "missing"  # no upload (or no bucket / not readable at HEAD)
    UNREADABLE = "unreadable"  # the peer's storage answered something unusable
    EARLY = "early"  # stored before the window opened (by the validator's own clock)
    LATE = "late"  # first seen after the upload cut-off
    OVERSIZE = "oversize"  # larger than any honest upload can be
    DOWNLOAD_FAILED = "download_failed"  # body could not be fetched within the budget
    UNREVEALED = "unrevealed"  # its seal key was not published by the reveal deadline
    BAD_SEAL = "bad_seal"  # not a sealed upload, or its revealed key does not open it
    MALFORMED = "malformed"  # not a valid signed upload document
    BAD_SIGNATURE = "bad_signature"  # signature or payload digest does not verify
    WRONG_FIELD = "wrong_field"  # uid, hotkey, spec version, hparams or shapes differ
    WRONG_WINDOW = "wrong_window"  # signed for another window
    BAD_PAGES = "bad_pages"  # claims no pages, or pages outside its assignment
    REPLAY = "replay"  # content already seen in an earlier window
    DUPLICATE = "duplicate"  # (near-)copy of another upload of the window
    MIX_OF_OTHERS = "mix_of_others"  # close to a combination of others or the last aggregate
    FREE_RIDER = "free_rider"  # zero, tiny or non-finite delta
    NO_TRAINING_EVIDENCE = "no_training_evidence"  # does not fit its own assigned pages
    HARMFUL = "harmful"  # raises the loss beyond noise
    OUT_OF_SYNC = "out_of_sync"  # trained on another model than the global one
    EVAL_FAILED = "eval_failed"  # evaluation raised (hostile or broken content)


@dataclass(frozen=True)
class Rejection:
    """One verdict: ``code`` for counting, ``detail`` for people (kept short, one line)."""

    code: RejectCode
    detail: str = ""

    def __post_init__(self) -> None:
        one_line = " ".join(str(self.detail).split())[:300]
        object.__setattr__(self, "detail", one_line)

    def __str__(self) -> str:
        return f"{self.code.value}: {self.detail}" if self.detail else self.code.value

    @property
    def missing(self) -> bool:
        return self.code is RejectCode.MISSING


MISSING = Rejection(RejectCode.MISSING)

# WireError.reason (training/envelope.py) -> the code a validator reports for it.
_WIRE_CODES = {
    "bad_signature": RejectCode.BAD_SIGNATURE,
    "digest_mismatch": RejectCode.BAD_SIGNATURE,
    "oversized": RejectCode.OVERSIZE,
    "field_mismatch": RejectCode.WRONG_FIELD,
}


def rejection_of_wire_error(reason: str, detail: str) -> Rejection:
    """The rejection for a ``WireError`` (a window mismatch gets its own code)."""
    code = _WIRE_CODES.get(reason, RejectCode.MALFORMED)
    if reason == "field_mismatch" and detail.startswith("window "):
        code = RejectCode.WRONG_WINDOW
    return Rejection(code, f"{reason}: {detail}")
