"""Plain value conversions of the subtensor adapter: weight checks, SDK neurons, result blocks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import bittensor as bt

from .errors import InvalidWeightsError
from .types import Neuron

U16_MAX = 65535


def checked_weights(uids: Sequence[int], weights: Sequence[float]) -> tuple[list[int], list[float]]:
    if len(uids) != len(weights):
        raise InvalidWeightsError(f"{len(uids)} uids but {len(weights)} weights")
    if not uids:
        raise InvalidWeightsError("no weights to set")
    try:
        uid_list = [int(u) for u in uids]
        weight_list = [float(w) for w in weights]
    except (TypeError, ValueError) as error:
        raise InvalidWeightsError(f"weights must be numbers ({error})") from error
    if any(u < 0 or u > U16_MAX for u in uid_list) or len(set(uid_list)) != len(uid_list):
        raise InvalidWeightsError("uids must be distinct integers in 0..65535")
    if any(not math.isfinite(w) or w < 0 for w in weight_list):
        raise InvalidWeightsError("weights must be finite and non-negative")
    if not any(w > 0 for w in weight_list):
        raise InvalidWeightsError("all weights are zero")
    return uid_list, weight_list


def neuron_from_sdk(n: Any) -> Neuron:
    """One SDK ``MetagraphNeuron`` as the project's typed ``Neuron`` (scores already in [0, 1])."""
    return Neuron(
        uid=int(n.uid),
        hotkey=str(n.hotkey),
        coldkey=str(n.coldkey),
        stake=float(n.total_stake.amount),  # alpha on dynamic subnets
        validator_permit=bool(n.validator_permit),
        last_update=int(n.last_update),
        incentive=float(n.incentive),
        dividends=float(n.dividends),
        consensus=float(n.consensus),
        trust=float(n.trust),
        emission=float(n.emission.amount),
        registered_at=int(n.block_at_registration),
    )


def result_block(result: bt.ExtrinsicResult) -> int | None:
    height, _, _ = (result.extrinsic_id or "").partition("-")
    return int(height) if height.isdigit() else None
