"""Run each subnet's epoch on subtensor's schedule and write the outputs back to the store.

Schedule (``should_run_epoch``): an epoch runs when ``block - last_epoch >= tempo``, or at an
owner-triggered ``pending_epoch_at``. At that block the due weight commits are revealed
first, then Yuma runs, then the emission is paid: the owner cut to the owner hotkey, the
rest 50/50 to miners (incentive) and validators (dividends, the validator's take to its
coldkey, the remainder to its stakers pro rata), all of it to validators when no miner earned
incentive. Incentive earned by the owner's hotkeys is withheld (burned), as on the chain.

Each subnet's epoch runs in its own savepoint: one failing subnet cannot stop the others.
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np

from . import store
from .params import SubnetHyperparams
from .reveal import reveal_due
from .subnets import netuids, owner_uid, subnet_row
from .yuma import YumaConfig, YumaResult, yuma_epoch

logger = logging.getLogger(__name__)


def epoch_due(row: sqlite3.Row, hp: SubnetHyperparams, block: int) -> bool:
    """subtensor's stateful schedule: LastEpochBlock + tempo, or an owner-triggered block."""
    pending = int(row["pending_epoch_at"] or 0)
    if pending > 0 and block >= pending:
        return True
    return block - int(row["last_epoch"]) >= hp.tempo


def run_due_epochs(conn: sqlite3.Connection, block: int) -> list[int]:
    """Run the epoch of every subnet due at ``block`` (each isolated); returns those that ran."""
    done = []
    for netuid in netuids(conn):
        conn.execute("SAVEPOINT epoch")
        try:
            row = subnet_row(conn, netuid)
            hp = SubnetHyperparams.from_json(row["params"])
            if epoch_due(row, hp, block):
                run_epoch(conn, netuid, block)
                done.append(netuid)
            conn.execute("RELEASE epoch")
        except Exception:  # noqa: BLE001 - one subnet's failure must not stop the others
            conn.execute("ROLLBACK TO epoch")
            conn.execute("RELEASE epoch")
            logger.exception("epoch of subnet %d failed at block %d", netuid, block)
    return done


def _matrix(conn: sqlite3.Connection, table: str, col: str, netuid: int, n: int) -> np.ndarray:
    m = np.zeros((n, n))
    for r in conn.execute(f"SELECT src, dst, {col} AS v FROM {table} WHERE netuid=?", (netuid,)):
        if r["src"] < n and r["dst"] < n:
            m[r["src"], r["dst"]] = r["v"]
    return m


def run_epoch(conn: sqlite3.Connection, netuid: int, block: int) -> YumaResult | None:
    """One epoch: reveal, consensus, incentive, bonds, dividends, emission, new permits."""
    row = subnet_row(conn, netuid)
    hp = SubnetHyperparams.from_json(row["params"])
    index = int(row["epoch_index"]) + 1
    previous = int(row["last_epoch"])
    conn.execute(
        "UPDATE subnets SET last_epoch=?, epoch_index=?, pending_epoch_at=0 WHERE netuid=?",
        (block, index, netuid),
    )
    if hp.commit_reveal:
        reveal_due(conn, netuid, index, hp.reveal_period_epochs, block)
    rows = store.neurons(conn, netuid)
    n = len(rows)
    if n == 0:
        return None
    stake = np.array([store.hotkey_stake(conn, r["hotkey"]) for r in rows])
    last_update = np.array([r["last_update"] for r in rows])
    registered = np.array([r["registered_at"] for r in rows])
    last_tempo = previous + 1 if previous > 0 else block - hp.tempo
    owner = owner_uid(conn, netuid)
    outdated = last_update[:, None] <= registered[None, :]
    if hp.commit_reveal:  # weights from a commit made before j registered do not count for j
        first = _first_pending_commit(conn, netuid, rows)
        outdated |= first[:, None] < registered[None, :]
    res = yuma_epoch(
        _matrix(conn, "weights", "w", netuid, n),
        stake,
        _matrix(conn, "bonds", "b", netuid, n),
        active=last_update + hp.activity_cutoff >= block,
        permits=np.array([bool(r["validator_permit"]) for r in rows]),
        outdated=outdated,
        recently_registered=last_tempo <= registered,
        owner_uid=owner,
        cfg=YumaConfig(
            kappa=hp.kappa,
            bonds_moving_average=hp.bonds_moving_average,
            bonds_penalty=hp.bonds_penalty,
            max_validators=hp.max_allowed_validators,
            stake_threshold=hp.stake_threshold,
            yuma3=bool(hp.yuma3),
        ),
    )
    paid = pay_emission(conn, netuid, row, hp, rows, res)
    _store_outputs(conn, netuid, rows, res, paid)
    logger.debug("epoch netuid=%d block=%d n=%d index=%d", netuid, block, n, index)
    return res


def _first_pending_commit(conn, netuid: int, rows) -> np.ndarray:
    """Per uid, the block of its earliest unrevealed commit (inf: none), as the chain masks."""
    first = dict(
        conn.execute(
            "SELECT hotkey, MIN(block) FROM weight_commits WHERE netuid=? GROUP BY hotkey",
            (netuid,),
        ).fetchall()
    )
    return np.array([float(first.get(r["hotkey"], np.inf)) for r in rows])


def split_emission(
    hp: SubnetHyperparams, res: YumaResult, withheld: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """(owner cut, miner payouts, validator payouts before take) of one epoch, in TAO.

    ``withheld``: uids whose incentive is burned (the owner's hotkeys)."""
    total = hp.emission_per_tempo
    cut = total * hp.owner_cut
    rest = total - cut
    incentive_sum = res.server_share.sum()
    miners = rest * 0.5 * normalize_or_zero(res.server_share)
    validator_pool = rest * 0.5 if incentive_sum > 0 else rest
    validators = validator_pool * normalize_or_zero(res.validator_share)
    miners = np.where(withheld, 0.0, miners)
    return cut, miners, validators


def normalize_or_zero(x: np.ndarray) -> np.ndarray:
    s = x.sum()
    return x / s if s > 0 else np.zeros_like(x)


def pay_emission(conn, netuid, row, hp, rows, res: YumaResult) -> np.ndarray:
    """Credit the epoch's emission as stake; returns what each uid was paid."""
    owner_cold, owner_hot = row["owner"], row["owner_hotkey"]
    withheld = np.array(
        [r["hotkey"] == owner_hot or store.owner_of(conn, r["hotkey"]) == owner_cold for r in rows]
    )
    cut, miners, validators = split_emission(hp, res, withheld)
    if cut > 0 and owner_hot:
        store.add_stake(conn, owner_hot, owner_cold, cut)
    for i, r in enumerate(rows):
        hotkey = r["hotkey"]
        coldkey = store.owner_of(conn, hotkey) or hotkey
        if miners[i] > 0:
            store.add_stake(conn, hotkey, coldkey, float(miners[i]))
        if validators[i] > 0:
            take = float(validators[i]) * hp.validator_take
            store.add_stake(conn, hotkey, coldkey, take)
            store.share_stake(conn, hotkey, float(validators[i]) - take)
    return miners + validators


def _store_outputs(conn, netuid: int, rows, res: YumaResult, paid: np.ndarray) -> None:
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
                float(paid[i]),
                float(res.pruning_score[i]),
                int(res.new_permits[i]),
                netuid,
                i,
            )
            for i in range(len(rows))
        ],
    )
    conn.execute("DELETE FROM bonds WHERE netuid=?", (netuid,))
    src, dst = np.nonzero(res.bonds > 0)
    conn.executemany(
        "INSERT INTO bonds(netuid, src, dst, b) VALUES(?, ?, ?, ?)",
        [(netuid, int(i), int(j), float(res.bonds[i, j])) for i, j in zip(src, dst, strict=True)],
    )
