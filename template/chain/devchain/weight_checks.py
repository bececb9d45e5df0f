"""The content checks of set_weights, as subtensor runs them, and writing a checked weight row.

Shared by ``rules.set_weights`` (commit-reveal off) and ``reveal`` (a commit being revealed).
"""

from __future__ import annotations

import math
import sqlite3

from . import store
from .errors import DevChainError
from .params import SubnetHyperparams
from .subnets import owner_uid, subnet


def check_weights(
    hp: SubnetHyperparams,
    n: int,
    me: sqlite3.Row,
    uids: list[int],
    weights: list[float],
    *,
    stake: float = 0.0,
    is_owner: bool = False,
) -> list[float]:
    """subtensor's set_weights checks (after registration, version and rate limit); returns
    the weights normalised to sum 1."""
    if len(uids) != len(weights):
        raise DevChainError(
            "invalid_weights", f"{len(uids)} uids but {len(weights)} weights: lengths must match"
        )
    if not uids:
        raise DevChainError("invalid_weights", "no weights given")
    if len(set(uids)) != len(uids):
        raise DevChainError("invalid_weights", "duplicate uids")
    bad = [u for u in uids if not 0 <= u < n]
    if bad:
        raise DevChainError("invalid_weights", f"unknown uids {bad[:8]} (subnet has {n} uids)")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise DevChainError("invalid_weights", "weights must be finite and non-negative")
    total = sum(weights)
    if total <= 0:
        raise DevChainError("invalid_weights", "at least one weight must be positive")
    norm = [w / total for w in weights]
    self_only = uids == [me["uid"]]
    if stake < hp.stake_threshold and not is_owner:
        raise DevChainError(
            "stake_too_low",
            f"uid {me['uid']} holds {stake:.6g} stake; setting weights needs stake_threshold "
            f"{hp.stake_threshold:g}",
        )
    if self_only:
        return norm
    if not me["validator_permit"] and not is_owner:
        raise DevChainError(
            "no_validator_permit",
            f"uid {me['uid']} has no validator permit (top {hp.max_allowed_validators} by stake, "
            "recomputed each epoch)",
        )
    need = min(hp.min_allowed_weights, n)
    if len(uids) < need:
        raise DevChainError("invalid_weights", f"{len(uids)} weights < min_allowed_weights {need}")
    if len(uids) > 1 and max(norm) > hp.max_weight_limit + 1e-9:
        raise DevChainError(
            "invalid_weights",
            f"largest normalised weight {max(norm):.4f} > max_weight_limit {hp.max_weight_limit}",
        )
    return norm


def check_version(hp: SubnetHyperparams, version_key: int) -> None:
    if version_key < hp.weights_version:
        raise DevChainError(
            "outdated_version",
            f"version_key {version_key} < subnet weights_version {hp.weights_version}; upgrade",
        )


def apply_weights(
    conn: sqlite3.Connection, netuid: int, me: sqlite3.Row, uids, weights, version_key: int
) -> None:
    """Every content check of set_weights, then replace ``me``'s weight row."""
    _, hp = subnet(conn, netuid)
    check_version(hp, version_key)
    n = len(store.neurons(conn, netuid))
    stake = store.hotkey_stake(conn, me["hotkey"])
    is_owner = owner_uid(conn, netuid) == me["uid"]
    norm = check_weights(hp, n, me, uids, weights, stake=stake, is_owner=is_owner)
    conn.execute("DELETE FROM weights WHERE netuid=? AND src=?", (netuid, me["uid"]))
    conn.executemany(
        "INSERT INTO weights(netuid, src, dst, w) VALUES(?, ?, ?, ?)",
        [(netuid, me["uid"], u, w) for u, w in zip(uids, norm, strict=True) if w > 0],
    )
