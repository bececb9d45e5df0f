"""Run Yuma consensus on a subnet at its tempo and write the outputs back to the store."""

from __future__ import annotations

import logging
import sqlite3

import numpy as np

from . import store
from .rules import netuids, subnet
from .yuma import is_topk_nonzero, yuma_epoch

logger = logging.getLogger(__name__)


def epoch_due(netuid: int, tempo: int, block: int) -> bool:
    """subtensor's schedule: a subnet runs its epoch when (block + netuid + 1) % (tempo + 1) == 0."""
    return (block + netuid + 1) % (tempo + 1) == 0


def run_due_epochs(conn: sqlite3.Connection, block: int) -> list[int]:
    """Run the epoch of every subnet due at ``block``; returns their netuids."""
    done = []
    for netuid in netuids(conn):
        _, hp = subnet(conn, netuid)
        if epoch_due(netuid, hp.tempo, block):
            run_epoch(conn, netuid, block)
            done.append(netuid)
    return done


def _matrix(conn: sqlite3.Connection, table: str, col: str, netuid: int, n: int) -> np.ndarray:
    m = np.zeros((n, n))
    for r in conn.execute(f"SELECT src, dst, {col} AS v FROM {table} WHERE netuid=?", (netuid,)):
        if r["src"] < n and r["dst"] < n:
            m[r["src"], r["dst"]] = r["v"]
    return m


def run_epoch(conn: sqlite3.Connection, netuid: int, block: int) -> None:
    """One epoch: consensus, incentive, bonds, dividends, emission (paid as stake), new permits."""
    _, hp = subnet(conn, netuid)
    rows = store.neurons(conn, netuid)
    n = len(rows)
    conn.execute("UPDATE subnets SET last_epoch=? WHERE netuid=?", (block, netuid))
    if n == 0:
        return
    stake = np.array([store.hotkey_stake(conn, r["hotkey"]) for r in rows])
    last_update = np.array([r["last_update"] for r in rows])
    registered = np.array([r["registered_at"] for r in rows])
    res = yuma_epoch(
        _matrix(conn, "weights", "w", netuid, n),
        stake,
        _matrix(conn, "bonds", "b", netuid, n),
        active=last_update + hp.activity_cutoff >= block,
        permits=np.array([bool(r["validator_permit"]) for r in rows]),
        outdated=last_update[:, None] <= registered[None, :],
        recently_registered=block - hp.tempo <= registered,
        kappa=hp.kappa,
        bonds_moving_average=hp.bonds_moving_average,
        bonds_penalty=hp.bonds_penalty,
    )
    emission = hp.emission_per_tempo * (res.server_share + res.validator_share)
    permits = is_topk_nonzero(stake, hp.max_allowed_validators)
    conn.executemany(
        "UPDATE neurons SET incentive=?, dividends=?, consensus=?, trust=?, validator_trust=?, "
        "rank=?, emission=?, pruning_score=?, validator_permit=? WHERE netuid=? AND uid=?",
        [
            (
                float(res.incentive[i]),
                float(res.dividends[i]),
                float(res.consensus[i]),
                float(res.trust[i]),
                float(res.validator_trust[i]),
                float(res.ranks[i]),
                float(emission[i]),
                float(res.pruning_score[i]),
                int(permits[i]),
                netuid,
                i,
            )
            for i in range(n)
        ],
    )
    conn.execute("DELETE FROM bonds WHERE netuid=?", (netuid,))
    src, dst = np.nonzero(res.bonds > 0)
    conn.executemany(
        "INSERT INTO bonds(netuid, src, dst, b) VALUES(?, ?, ?, ?)",
        [(netuid, int(i), int(j), float(res.bonds[i, j])) for i, j in zip(src, dst, strict=True)],
    )
    for i, r in enumerate(rows):
        if emission[i] > 0:
            owner = store.owner_of(conn, r["hotkey"]) or r["hotkey"]
            store.add_stake(conn, r["hotkey"], owner, float(emission[i]))
    logger.debug("epoch netuid=%d block=%d n=%d permits=%d", netuid, block, n, permits.sum())
