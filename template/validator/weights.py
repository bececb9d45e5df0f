"""Scores -> weights the chain accepts (normalised, capped, enough non-zero uids), set on a
rate-limited schedule and verified on chain once the reveal delay has passed.

Fillers (uids that earned nothing but must be weighted to meet MinAllowedWeights or the
max-weight cap) go first to the validator's own uid and the subnet owner's uid, which pay no
one. The residual when the chain asks for more: each further filler takes one u16 step
(1/65535) of the top weight, about 1.5e-5 of the incentive on the dev chain's epoch; a
max_weight_limit below 1 with too few earners forces whole shares onto fillers (1/3 of the
incentive to a copier at limit 0.25 with one earner among 5 uids).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

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


# A filler uid's weight relative to the largest: the smallest step of the SDK's u16
# max-upscale (``round(w / max * 65535) == 1``), so the chain keeps it and it moves as little
# emission as the chain's rules allow.
FILLER_SHARE = 1 / 65535


def required_weights(params: SubnetParams, n: int) -> int:
    """How many non-zero weights a vector needs: min(MinAllowedWeights, n) as the chain checks
    it, and at least 1/max_weight_limit so the cap can be met at all."""
    need = min(params.min_allowed_weights, n)
    if 0 < params.max_weight_limit < 1.0:
        need = max(need, min(n, math.ceil(1.0 / params.max_weight_limit - 1e-9)))
    return need


def filler_order(
    uids: list[int],
    earners: set[int],
    exclude: set[int],
    own_uid: int | None,
    owner_uid: int | None,
) -> list[int]:
    """Uids that earned nothing, in the order filler weights go to them, harmless first:
    the validator's own uid (the epoch drops a validator's weight on itself), the subnet
    owner's uid (the chain burns its incentive), other validators, then miners. Only when the
    chain asks for more weights than that are non-earning miners paid a filler share."""
    free = [u for u in (own_uid, owner_uid) if u is not None and u in uids]
    order = list(dict.fromkeys(free))
    order += sorted(set(uids) & exclude - set(order))
    order += sorted(set(uids) - exclude - set(order))
    return [u for u in order if u not in earners]


def compute_weights(
    scores: Mapping[int, float],
    uids: list[int],
    params: SubnetParams,
    *,
    exclude: set[int],
    own_uid: int | None = None,
) -> dict[int, float]:
    """uid -> weight: positive scores normalised and capped. When fewer uids earned something
    than the subnet requires, uids in ``filler_order`` get a small non-zero filler weight
    (never zero: the SDK drops zeros and then refuses a short vector). Empty when no miner
    earned anything."""
    valid = set(uids) - exclude
    raw = {u: s for u, s in scores.items() if u in valid and s > 0 and math.isfinite(s)}
    if not raw:
        return {}
    need = required_weights(params, len(set(uids)))
    if len(raw) < need:
        floor = max(raw.values()) * FILLER_SHARE
        spare = filler_order(uids, set(raw), exclude, own_uid, params.owner_uid)
        for u in spare[: need - len(raw)]:
            raw[u] = floor
    return cap_weights(raw, params.max_weight_limit)


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


@dataclass
class PendingWeights:
    """Weights sent at ``block``, to be checked on chain from ``check_at`` on."""

    weights: dict[int, float]
    block: int
    check_at: int


@dataclass(frozen=True)
class WeightsCheck:
    """Whether the weights a validator set are the ones in force on chain."""

    landed: bool
    block: int
    message: str


def pending_check(weights: Mapping[int, float], block: int, params: SubnetParams) -> PendingWeights:
    """What to verify, and from which block (commit-reveal: after the reveal delay)."""
    return PendingWeights(dict(weights), block, block + params.reveal_delay_blocks())


def weights_match(sent: Mapping[int, float], on_chain: Mapping[int, float], tol=2e-3) -> bool:
    """Same non-zero uids and shares within ``tol`` (the chain stores u16-quantised rows)."""
    total = sum(w for w in sent.values() if w > 0)
    if total <= 0:
        return False
    want = {u: w / total for u, w in sent.items() if w > 0}
    got = {u: w for u, w in on_chain.items() if w > 0}
    small = {u for u, w in want.items() if w < tol}  # quantisation may drop tiny fillers
    if set(got) - set(want) or set(want) - set(got) - small:
        return False
    return all(abs(want[u] - got.get(u, 0.0)) <= tol for u in want)


async def verify_weights(
    chain: Chain, uid: int, pending: PendingWeights, newer: list[PendingWeights] = ()
) -> WeightsCheck:
    """Read ``uid``'s weights row and compare it with what was sent (or a newer send that may
    already be in force); never raises."""
    try:
        block = await chain.block()
        row = await chain.weights_of(uid)
    except Exception as e:  # noqa: BLE001 - reported, retried at the next check
        return WeightsCheck(False, -1, f"could not read weights on chain: {type(e).__name__}: {e}")
    if any(weights_match(p.weights, row) for p in (pending, *newer)):
        return WeightsCheck(True, block, f"weights set at block {pending.block} are in force")
    return WeightsCheck(
        False,
        block,
        f"weights set at block {pending.block} are not in force at block {block} "
        f"(on chain: {len(row)} uids); with commit-reveal the chain drops a reveal that fails "
        "its checks (permit, stake threshold, version key, weight count) without an error",
    )


class WeightsTracker:
    """The sends not yet verified. At each check, the newest send whose reveal delay has
    passed must be in force (or a newer one, if already revealed); older ones are moot."""

    def __init__(self, keep: int = 16):
        self.pending: list[PendingWeights] = []
        self.keep = keep

    def sent(self, weights: Mapping[int, float], block: int, params: SubnetParams) -> None:
        self.pending = [*self.pending, pending_check(weights, block, params)][-self.keep :]

    async def check(self, chain: Chain, uid: int, block: int) -> WeightsCheck | None:
        """None while nothing is due; else the outcome for the newest due send."""
        due = [p for p in self.pending if block >= p.check_at]
        if not due:
            return None
        newer = [p for p in self.pending if block < p.check_at]
        self.pending = newer
        return await verify_weights(chain, uid, due[-1], newer)


@dataclass(frozen=True)
class WeightsSent:
    """Weights this window put on chain, and the block they were set at."""

    weights: dict[int, float]
    block: int


async def set_weights_when_due(
    chain: Chain,
    tracker: WeightsTracker,
    *,
    window: int,
    own_uid: int | None,
    scores: Mapping[int, float],
    uids: list[int],
    exclude: set[int],
    last_weights_block: int,
    every: int,
) -> tuple[WeightsSent | None, WeightsCheck | None]:
    """The weights stage: check that the last weights took effect, then set new ones when due.
    Chain errors are logged and retried next window; they never raise."""
    try:
        params = await chain.subnet_params()
        block = await chain.block()
    except Exception as e:  # noqa: BLE001 - retried next window
        logger.warning("could not read subnet params: %s", e)
        return None, None
    check = None
    if own_uid is not None:
        check = await tracker.check(chain, own_uid, block)
        if check is not None:
            (logger.info if check.landed else logger.warning)("weights check: %s", check.message)
    if not weights_due(block, last_weights_block, window, params, every):
        return None, check
    weights = compute_weights(scores, uids, params, exclude=exclude, own_uid=own_uid)
    if not weights:
        logger.info("window %d: no miner has a positive score; weights not set", window)
        return None, check
    res = await set_weights_with_retry(chain, weights)
    if not res.success:
        logger.warning(
            "window %d: set_weights failed (%s); retrying next window", window, res.message
        )
        return None, check
    sent_block = res.block if res.block is not None else block
    tracker.sent(weights, sent_block, params)
    return WeightsSent(dict(weights), sent_block), check
