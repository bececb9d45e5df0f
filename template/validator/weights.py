"""Scores -> weights the chain accepts: normalised, capped, padded, on a rate-limited schedule."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping

from template import SPEC_VERSION
from template.chain.errors import ChainError
from template.chain.protocol import Chain
from template.chain.types import SubnetParams, WeightsResult

logger = logging.getLogger(__name__)


def cap_weights(weights: Mapping[int, float], limit: float) -> dict[int, float]:
    """Normalise to sum 1 with no share above ``limit``: capped shares are fixed and the rest
    is spread over the others in proportion (water-filling). If the cap cannot be met (fewer
    than 1/limit positive uids) the shares stay equal and the chain will refuse them."""
    pos = {u: w for u, w in weights.items() if w > 0 and math.isfinite(w)}
    total = sum(pos.values())
    if total <= 0:
        return {}
    out = {u: w / total for u, w in pos.items()}
    if limit >= 1.0 or len(out) * limit < 1.0:
        return out
    fixed: dict[int, float] = {}
    while True:
        free = {u: w for u, w in out.items() if u not in fixed}
        over = [u for u, w in free.items() if w > limit + 1e-12]
        if not over:
            return out
        for u in over:
            fixed[u] = limit
        rest = 1.0 - limit * len(fixed)
        free_total = sum(w for u, w in free.items() if u not in fixed)
        out = dict(fixed)
        for u, w in free.items():
            if u not in fixed:
                out[u] = rest * w / free_total if free_total > 0 else 0.0


def compute_weights(
    scores: Mapping[int, float], uids: list[int], params: SubnetParams, *, exclude: set[int]
) -> dict[int, float]:
    """uid -> weight: positive scores normalised and capped; padded with zero weights up to
    ``min_allowed_weights`` entries. Empty when no miner earned anything."""
    valid = set(uids) - exclude
    raw = {u: s for u, s in scores.items() if u in valid and s > 0 and math.isfinite(s)}
    out = cap_weights(raw, params.max_weight_limit)
    if not out:
        return {}
    for u in sorted(valid):
        if len(out) >= params.min_allowed_weights:
            break
        out.setdefault(u, 0.0)
    return out


def weights_due(
    block: int, last_block: int | None, window: int, params: SubnetParams, every: int
) -> bool:
    if window % every != 0:
        return False
    return last_block is None or block - last_block >= params.weights_rate_limit


async def set_weights_with_retry(
    chain: Chain, weights: Mapping[int, float], attempts: int = 3, backoff: float = 1.0
) -> WeightsResult:
    """set_weights with SPEC_VERSION as version_key; failures are logged and retried, never raised."""
    uids = sorted(weights)
    values = [float(weights[u]) for u in uids]
    last = WeightsResult(False, None, "not tried")
    for i in range(attempts):
        try:
            last = await chain.set_weights(uids, values, version_key=SPEC_VERSION)
        except ChainError as e:
            last = WeightsResult(False, None, f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - a chain hiccup must not stop the loop
            last = WeightsResult(False, None, f"{type(e).__name__}: {e}")
        if last.success:
            return last
        logger.warning("set_weights attempt %d/%d failed: %s", i + 1, attempts, last.message)
        if "rate" in last.message.lower():
            break
        await asyncio.sleep(backoff * (i + 1))
    return last
