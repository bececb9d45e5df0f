"""Yuma consensus as subtensor's epoch computes it (float64 numpy, no fixed point).

Pure functions only: matrices in, vectors out. ``docs/devchain.md`` maps each step onto
subtensor's ``pallets/subtensor/src/epoch/run_epoch.rs`` (``epoch_mechanism``): the
original bonds branch and the Yuma3 branch (a subnet switch), without liquid alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalize(x: np.ndarray) -> np.ndarray:
    """x / sum(x), or x unchanged when the sum is 0."""
    s = x.sum()
    return x / s if s > 0 else x.copy()


def row_normalize(m: np.ndarray) -> np.ndarray:
    s = m.sum(axis=1, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m), where=s > 0)


def col_normalize(m: np.ndarray) -> np.ndarray:
    s = m.sum(axis=0, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m), where=s > 0)


def weighted_median_col(stake: np.ndarray, weights: np.ndarray, kappa: float) -> np.ndarray:
    """Per column j: the largest w such that validators with W_ij >= w hold >= kappa of the stake.

    Only rows with positive stake vote. This is the consensus weight each miner gets.
    """
    total = stake.sum()
    out = np.zeros(weights.shape[1])
    if total <= 0:
        return out
    voters = stake > 0
    s = stake[voters] / total
    for j in range(weights.shape[1]):
        col = weights[voters, j]
        order = np.argsort(-col, kind="stable")  # highest weight first
        support = np.cumsum(s[order])  # stake backing >= col[order[k]]
        reached = np.nonzero(support >= kappa - 1e-12)[0]
        if reached.size:
            out[j] = col[order[reached[0]]]
    return out


def is_topk_nonzero(values: np.ndarray, k: int) -> np.ndarray:
    """True for the k largest non-zero entries. Ties keep the higher index: subtensor sorts
    ascending (stable) and drops the first n - k."""
    values = np.asarray(values, dtype=np.float64)
    mask = values != 0
    n = len(values)
    if n > k:
        dropped = np.argsort(values, kind="stable")[: n - k]
        mask[dropped] = False
    return mask


@dataclass(frozen=True)
class YumaResult:
    consensus: np.ndarray
    validator_trust: np.ndarray
    ranks: np.ndarray
    trust: np.ndarray
    incentive: np.ndarray
    dividends: np.ndarray
    bonds: np.ndarray  # what is stored: rows only for new permit holders
    server_share: np.ndarray  # share of the epoch's emission paid as incentive
    validator_share: np.ndarray  # share paid as dividends
    pruning_score: np.ndarray  # normalised combined emission
    active_stake: np.ndarray
    new_permits: np.ndarray


@dataclass(frozen=True)
class YumaConfig:
    """The subnet switches the epoch reads (subtensor defaults)."""

    kappa: float = 32767 / 65535
    bonds_moving_average: float = 0.9
    bonds_penalty: float = 1.0
    max_validators: int = 64
    stake_threshold: float = 0.0
    yuma3: bool = False


def _bonds_original(w_bonds, b_prev, active_stake, incentive, alpha):
    b_prev = col_normalize(b_prev)
    delta = col_normalize(w_bonds * active_stake[:, None])
    ema = col_normalize(alpha * delta + (1.0 - alpha) * b_prev)
    return ema, normalize(ema @ incentive)


def _bonds_yuma3(w_bonds, b_prev, active_stake, incentive, alpha):
    ema = alpha * w_bonds + (1.0 - alpha) * b_prev  # per validator, from its own weights
    per_validator = (col_normalize(ema) * incentive[None, :]).sum(axis=1)
    return ema, normalize(per_validator * active_stake)


def yuma_epoch(
    weights: np.ndarray,
    stake: np.ndarray,
    bonds: np.ndarray,
    *,
    active: np.ndarray,
    permits: np.ndarray,
    outdated: np.ndarray | None = None,
    recently_registered: np.ndarray | None = None,
    owner_uid: int | None = None,
    cfg: YumaConfig = YumaConfig(),
) -> YumaResult:
    """One epoch over n uids.

    weights[i, j]: raw weight validator i gave miner j; stake[i]: stake of uid i; bonds[i, j]:
    stored bonds; active/permits: per-uid masks (permits from the previous epoch); outdated[i, j]:
    i's weights predate j's registration; recently_registered[j]: j registered after the last
    epoch; owner_uid: the uid of the subnet owner's hotkey (always a permit, self-weight kept,
    exempt from the stake threshold).
    """
    n = len(stake)
    w = np.asarray(weights, dtype=np.float64).reshape(n, n).copy()
    b_prev = np.asarray(bonds, dtype=np.float64).reshape(n, n).copy()
    raw = np.asarray(stake, dtype=np.float64)
    owner = np.zeros(n, dtype=bool)
    if owner_uid is not None and 0 <= owner_uid < n:
        owner[owner_uid] = True
    s = normalize(np.where((raw >= cfg.stake_threshold) | owner, raw, 0.0))
    active = np.asarray(active, dtype=bool)
    permits = np.asarray(permits, dtype=bool) | owner
    new_permits = is_topk_nonzero(s, cfg.max_validators) | owner

    active_stake = normalize(np.where(active & permits, s, 0.0))

    w[~permits, :] = 0.0  # only permitted validators' rows count
    keep = np.diag(w).copy() * owner  # the owner's self-weight is kept
    np.fill_diagonal(w, keep)
    if outdated is not None:
        w[np.asarray(outdated, dtype=bool)] = 0.0
    w = row_normalize(w)

    preranks = w.T @ active_stake
    consensus = weighted_median_col(active_stake, w, cfg.kappa)
    clipped = np.minimum(w, consensus[None, :])
    validator_trust = clipped.sum(axis=1)
    ranks = clipped.T @ active_stake
    trust = np.divide(ranks, preranks, out=np.zeros(n), where=preranks > 0)
    incentive = normalize(ranks)

    w_bonds = (1.0 - cfg.bonds_penalty) * w + cfg.bonds_penalty * clipped
    if recently_registered is not None:
        b_prev[:, np.asarray(recently_registered, dtype=bool)] = 0.0
    alpha = 1.0 - cfg.bonds_moving_average
    step = _bonds_yuma3 if cfg.yuma3 else _bonds_original
    ema, dividends = step(w_bonds, b_prev, active_stake, incentive, alpha)
    ema[~new_permits, :] = 0.0  # a bond row survives only with a permit

    total = incentive.sum() + dividends.sum()
    if total > 0:
        server_share, validator_share = incentive / total, dividends / total
        combined = normalize(incentive + dividends)
    else:  # nobody set usable weights: pay validators by stake, as subtensor does
        server_share = np.zeros(n)
        validator_share = active_stake if active_stake.sum() > 0 else s
        combined = validator_share.copy()
    return YumaResult(
        consensus=consensus,
        validator_trust=validator_trust,
        ranks=ranks,
        trust=trust,
        incentive=incentive,
        dividends=dividends,
        bonds=ema,
        server_share=server_share,
        validator_share=validator_share,
        pruning_score=combined,
        active_stake=active_stake,
        new_permits=new_permits,
    )
