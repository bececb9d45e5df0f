"""Commit-reveal of weights, as subtensor runs it (the timelocked v4 path, in the clear).

With ``commit_reveal`` on, ``set_weights`` stores a commit tagged with the subnet's epoch
index; nobody can read it. When the epoch that makes the index ``e + reveal_period_epochs``
starts, the commits of epoch ``e`` are revealed, right before that epoch runs: each goes
through every content check of set_weights (permit, stake threshold, version key, weight
count, max weight) and replaces the validator's row, or is dropped with no error to the
sender, as on the chain. Each outcome is logged and kept in the ``reveals`` table
(``GET /subnets/{netuid}/reveals``) so an operator can see why weights did not land.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3

from . import store
from .errors import DevChainError
from .subnets import subnet_row
from .weight_checks import apply_weights

logger = logging.getLogger(__name__)

MAX_UNREVEALED = 10  # subtensor: TooManyUnrevealedCommits


def _check_shape(uids: list[int], weights: list[float], n: int) -> None:
    """What the SDK refuses before it signs a commit (the chain cannot see inside one)."""
    if len(uids) != len(weights) or not uids:
        raise DevChainError("invalid_weights", "uids and weights must be equal, non-empty lists")
    if len(set(uids)) != len(uids) or any(not 0 <= u < n for u in uids):
        raise DevChainError("invalid_weights", f"duplicate or unknown uids (subnet has {n})")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise DevChainError("invalid_weights", "weights must be finite, non-negative, not all 0")


def commit_weights(
    conn: sqlite3.Connection,
    netuid: int,
    me: sqlite3.Row,
    uids: list[int],
    weights: list[float],
    version_key: int,
    block: int,
) -> None:
    _check_shape(uids, weights, len(store.neurons(conn, netuid)))
    pending = conn.execute(
        "SELECT COUNT(*) AS c FROM weight_commits WHERE netuid=? AND hotkey=?",
        (netuid, me["hotkey"]),
    ).fetchone()["c"]
    if pending >= MAX_UNREVEALED:
        raise DevChainError("rate_limited", f"{pending} unrevealed commits; wait for a reveal")
    epoch = subnet_row(conn, netuid)["epoch_index"]
    conn.execute(
        "INSERT INTO weight_commits(netuid, hotkey, epoch, block, uids, weights, version_key) "
        "VALUES(?, ?, ?, ?, ?, ?, ?)",
        (netuid, me["hotkey"], epoch, block, json.dumps(uids), json.dumps(weights), version_key),
    )


def reveal_due(
    conn: sqlite3.Connection, netuid: int, new_index: int, reveal_period: int, block: int
) -> int:
    """Reveal the commits of epoch ``new_index - reveal_period`` (older ones expire); returns
    how many landed."""
    reveal_epoch = new_index - reveal_period
    rows = conn.execute(
        "SELECT rowid, * FROM weight_commits WHERE netuid=? AND epoch<=? ORDER BY block, rowid",
        (netuid, reveal_epoch),
    ).fetchall()
    landed = 0
    for r in rows:
        if r["epoch"] < reveal_epoch:
            continue  # expired: its reveal epoch has passed
        ok, message = _reveal_one(conn, netuid, r)
        landed += ok
        conn.execute(
            "INSERT INTO reveals(netuid, hotkey, commit_block, block, ok, message) "
            "VALUES(?, ?, ?, ?, ?, ?)",
            (netuid, r["hotkey"], r["block"], block, int(ok), message),
        )
    conn.execute("DELETE FROM weight_commits WHERE netuid=? AND epoch<=?", (netuid, reveal_epoch))
    conn.execute(  # keep the reveal log bounded
        "DELETE FROM reveals WHERE netuid=? AND rowid NOT IN "
        "(SELECT rowid FROM reveals WHERE netuid=? ORDER BY rowid DESC LIMIT 1000)",
        (netuid, netuid),
    )
    return landed


def _reveal_one(conn: sqlite3.Connection, netuid: int, r: sqlite3.Row) -> tuple[bool, str]:
    me = store.neuron_by_hotkey(conn, netuid, r["hotkey"])
    if me is None or me["registered_at"] > r["block"]:
        return False, "hotkey no longer holds the uid it committed from"
    try:
        apply_weights(
            conn, netuid, me, json.loads(r["uids"]), json.loads(r["weights"]), r["version_key"]
        )
    except DevChainError as e:
        logger.info("netuid %d: reveal of %s dropped: %s", netuid, r["hotkey"], e.message)
        return False, f"{e.code}: {e.message}"
    return True, "revealed"
