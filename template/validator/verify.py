"""Per-upload checks that need no model: decoding (format, signature, window, fields, size),
page claims and delta size. Each returns a ``Rejection`` or None, never raises for a peer."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Mapping

from template import SPEC_VERSION
from template.hparams import HParams, hparams_hash
from template.training.envelope import WireError
from template.training.pages import PageLayout
from template.training.wire import Upload, decode_upload

from .outcomes import RejectCode, Rejection, rejection_of_wire_error

logger = logging.getLogger(__name__)


def decode_checked(
    blob: bytes,
    *,
    window: int,
    uid: int,
    hotkey: str,
    hp: HParams,
    shapes: Mapping[str, tuple[int, ...]],
    cap: int,
) -> Upload | Rejection:
    """The upload in ``blob`` if it is a valid signed upload of ``hotkey``/``uid`` for
    ``window`` under this run's hparams, else why not."""
    try:
        return decode_upload(
            blob,
            max_bytes=cap,
            expected={
                "window": window,
                "uid": uid,
                "hotkey": hotkey,
                "spec_version": SPEC_VERSION,
                "hparams_hash": hparams_hash(hp),
            },
            param_shapes=shapes,
            config=hp.compression,
        )
    except WireError as e:
        return rejection_of_wire_error(e.reason, e.detail)
    except Exception as e:  # noqa: BLE001 - decode_upload promises WireError; be safe anyway
        return Rejection(RejectCode.MALFORMED, type(e).__name__)


def page_claim_rejection(
    upload: Upload, layout: PageLayout, window: int, uid: int, budget: int = 0
):
    """None when every claimed page is in pages(window, uid, n), n at most ``budget`` (the
    window's page budget, hparams ``pages_per_window``; 0: no cap), else BAD_PAGES."""
    claimed = upload.pages
    if not claimed:
        return Rejection(RejectCode.BAD_PAGES, "claims no pages")
    if budget and len(claimed) > budget:
        return Rejection(
            RejectCode.BAD_PAGES,
            f"claims {len(claimed)} pages; a window's budget is {budget} (H steps of the batch)",
        )
    assigned = set(layout.pages(window, uid, len(claimed)))
    outside = [p for p in claimed if p not in assigned]
    if outside:
        return Rejection(
            RejectCode.BAD_PAGES,
            f"claims {len(outside)} page(s) outside its assignment (e.g. {outside[0]})",
        )
    return None


def free_riders(norms: Mapping[int, float], min_ratio: float) -> dict[int, Rejection]:
    """uid -> FREE_RIDER for zero, non-finite or tiny deltas (< ``min_ratio`` x median)."""
    out: dict[int, Rejection] = {}
    finite = [n for n in norms.values() if math.isfinite(n) and n > 0]
    median = statistics.median(finite) if finite else 0.0
    for uid, n in norms.items():
        if not math.isfinite(n):
            out[uid] = Rejection(RejectCode.FREE_RIDER, "non-finite delta")
        elif n == 0:
            out[uid] = Rejection(RejectCode.FREE_RIDER, "zero delta")
        elif n < min_ratio * median:
            out[uid] = Rejection(
                RejectCode.FREE_RIDER,
                f"tiny delta (norm {n:.3g} < {min_ratio} x median {median:.3g})",
            )
    return out
