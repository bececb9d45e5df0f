"""The dev chain's extrinsics: each checks subtensor's rules and writes state in one transaction.

Every function takes an open connection inside a ``store.Tx`` and raises ``DevChainError``
(nothing written) when a rule says no. Signatures were verified before these run.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time

from ...signing import dev_keypair
from . import store
from .errors import DevChainError
from .params import DEV_ACCOUNTS, Genesis, SubnetHyperparams
from .reveal import commit_weights
from .subnets import netuids, subnet, subnet_row
from .weight_checks import apply_weights

MAX_SUBNETS = 32  # bounds the epoch work of one block
SUBNET_LOCK_TAO = 100.0  # paid (burned) by whoever creates a subnet, as subtensor locks TAO


def apply_genesis(conn: sqlite3.Connection, genesis: Genesis) -> bool:
    """Write block 0, fund the dev accounts and create the genesis subnet; False if already done."""
    if store.get_meta(conn, "genesis") is not None:
        return False
    conn.execute("INSERT INTO blocks(number, timestamp) VALUES(0, ?)", (time.time(),))
    for uri in DEV_ACCOUNTS:
        store.add_balance(conn, dev_keypair(uri).ss58_address, genesis.dev_balance)
    alice = dev_keypair("//Alice").ss58_address
    conn.execute(  # the owner hotkey is //Alice's address too; it holds no uid until registered
        "INSERT INTO subnets(netuid, owner, params, owner_hotkey) VALUES(?, ?, ?, ?)",
        (genesis.netuid, alice, genesis.subnet.to_json(), alice),
    )
    store.set_meta(conn, "genesis", json.dumps({"netuid": genesis.netuid}))
    return True


def produce_block(conn: sqlite3.Connection, now: float) -> int:
    n = store.current_block(conn) + 1
    conn.execute("INSERT INTO blocks(number, timestamp) VALUES(?, ?)", (n, now))
    return n


def _require_positive_amount(tao: float) -> None:
    if not (isinstance(tao, int | float) and math.isfinite(tao) and tao > 0):
        raise DevChainError("invalid_request", f"amount must be a positive finite TAO value: {tao}")


def _debit(conn: sqlite3.Connection, coldkey: str, tao: float, what: str) -> None:
    have = store.balance(conn, coldkey)
    if have + 1e-12 < tao:
        raise DevChainError(
            "insufficient_balance", f"{what} needs {tao} TAO but coldkey {coldkey} holds {have}"
        )
    store.add_balance(conn, coldkey, -tao)


def transfer(conn: sqlite3.Connection, src: str, dest: str, tao: float) -> None:
    _require_positive_amount(tao)
    _debit(conn, src, tao, "transfer")
    store.add_balance(conn, dest, tao)


def create_subnet(
    conn: sqlite3.Connection, owner: str, netuid: int, params: dict, owner_hotkey: str | None
) -> None:
    """A new subnet owned by ``owner``; its owner hotkey takes uid 0, as on subtensor."""
    if not 1 <= netuid <= 65535:
        raise DevChainError("invalid_request", f"netuid must be in 1..65535, got {netuid}")
    if conn.execute("SELECT 1 FROM subnets WHERE netuid=?", (netuid,)).fetchone():
        raise DevChainError("invalid_request", f"subnet {netuid} already exists")
    if len(netuids(conn)) >= MAX_SUBNETS:
        raise DevChainError("invalid_request", f"the dev chain holds at most {MAX_SUBNETS} subnets")
    try:
        hp = SubnetHyperparams().with_overrides(params)
    except ValueError as e:
        raise DevChainError("invalid_request", str(e)) from None
    _debit(conn, owner, SUBNET_LOCK_TAO, "creating a subnet (the lock cost)")
    hotkey = owner_hotkey or owner
    holder = store.owner_of(conn, hotkey)
    if holder is not None and holder != owner:
        raise DevChainError("not_owner", f"hotkey {hotkey} belongs to coldkey {holder}")
    block = store.current_block(conn)
    conn.execute(
        "INSERT INTO subnets(netuid, owner, params, last_epoch, owner_hotkey) VALUES(?,?,?,?,?)",
        (netuid, owner, hp.to_json(), block, hotkey),
    )
    conn.execute("INSERT OR IGNORE INTO owners(hotkey, coldkey) VALUES(?, ?)", (hotkey, owner))
    conn.execute(
        "INSERT INTO neurons(netuid, uid, hotkey, registered_at, last_update) VALUES(?,?,?,?,?)",
        (netuid, 0, hotkey, block, block),
    )


def trigger_epoch(conn: sqlite3.Connection, netuid: int, caller: str) -> int:
    """The owner asks for an epoch at the next block (refused with commit-reveal on, as the
    chain refuses it: it would break the reveal schedule). Returns that block."""
    owner, hp = subnet(conn, netuid)
    if caller != owner:
        raise DevChainError(
            "not_owner", f"only subnet {netuid}'s owner coldkey {owner} may do this"
        )
    if hp.commit_reveal:
        raise DevChainError(
            "commit_reveal_on", "trigger_epoch is refused while commit-reveal is on"
        )
    at = store.current_block(conn) + 1
    conn.execute("UPDATE subnets SET pending_epoch_at=? WHERE netuid=?", (at, netuid))
    return at


def sudo_set(conn: sqlite3.Connection, netuid: int, caller: str, params: dict) -> None:
    owner, hp = subnet(conn, netuid)
    if caller != owner:
        raise DevChainError("not_owner", f"only subnet {netuid}'s owner coldkey {owner} may sudo")
    try:
        hp = hp.with_overrides(params)
    except ValueError as e:
        raise DevChainError("invalid_request", str(e)) from None
    conn.execute("UPDATE subnets SET params=? WHERE netuid=?", (hp.to_json(), netuid))


def _neuron_to_prune(
    rows: list[sqlite3.Row], block: int, immunity: int, owner_hotkey: str | None
) -> int | None:
    """The uid a new registration replaces: non-immune, lowest pruning score, oldest first.
    The owner's hotkey is never pruned."""
    candidates = [
        r for r in rows if r["registered_at"] + immunity <= block and r["hotkey"] != owner_hotkey
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda r: (r["pruning_score"], r["registered_at"], r["uid"]))
    return int(best["uid"])


def _reset_uid(conn: sqlite3.Connection, netuid: int, uid: int, old_hotkey: str) -> None:
    """Clear everything the previous holder of ``uid`` left: weights, bonds, commitment."""
    conn.execute("DELETE FROM weights WHERE netuid=? AND (src=? OR dst=?)", (netuid, uid, uid))
    conn.execute("DELETE FROM bonds WHERE netuid=? AND (src=? OR dst=?)", (netuid, uid, uid))
    conn.execute("DELETE FROM commitments WHERE netuid=? AND hotkey=?", (netuid, old_hotkey))
    conn.execute("DELETE FROM neurons WHERE netuid=? AND uid=?", (netuid, uid))


def register(conn: sqlite3.Connection, netuid: int, coldkey: str, hotkey: str) -> int:
    """Burned registration: pay ``burn`` from ``coldkey``, take a free uid or prune one."""
    _, hp = subnet(conn, netuid)
    if store.neuron_by_hotkey(conn, netuid, hotkey) is not None:
        raise DevChainError("already_registered", f"hotkey {hotkey} already holds a uid")
    owner = store.owner_of(conn, hotkey)
    if owner is not None and owner != coldkey:
        raise DevChainError("not_owner", f"hotkey {hotkey} belongs to coldkey {owner}")
    block = store.current_block(conn)
    this_block = conn.execute(
        "SELECT COUNT(*) AS c FROM neurons WHERE netuid=? AND registered_at=?", (netuid, block)
    ).fetchone()["c"]
    if this_block >= hp.max_registrations_per_block:
        raise DevChainError(
            "too_many_registrations",
            f"subnet {netuid} takes {hp.max_registrations_per_block} registration(s) per block; "
            f"retry at block {block + 1}",
        )
    rows = store.neurons(conn, netuid)
    if len(rows) < hp.max_allowed_uids:
        uid = len(rows)
    else:
        pruned = _neuron_to_prune(
            rows, block, hp.immunity_period, subnet_row(conn, netuid)["owner_hotkey"]
        )
        if pruned is None:
            raise DevChainError(
                "subnet_full",
                f"subnet {netuid} has {hp.max_allowed_uids} uids, all still immune "
                f"(immunity_period={hp.immunity_period} blocks); retry later",
            )
        uid = pruned
        _reset_uid(conn, netuid, uid, rows[uid]["hotkey"])
    if hp.burn > 0:
        _debit(conn, coldkey, hp.burn, "registration")
    conn.execute("INSERT OR IGNORE INTO owners(hotkey, coldkey) VALUES(?, ?)", (hotkey, coldkey))
    conn.execute(
        "INSERT INTO neurons(netuid, uid, hotkey, registered_at, last_update) VALUES(?,?,?,?,?)",
        (netuid, uid, hotkey, block, block),
    )
    return uid


def add_stake(conn: sqlite3.Connection, coldkey: str, hotkey: str, tao: float) -> None:
    _require_positive_amount(tao)
    if store.owner_of(conn, hotkey) is None:
        raise DevChainError("not_registered", f"hotkey {hotkey} was never registered")
    _debit(conn, coldkey, tao, "add_stake")
    store.add_stake(conn, hotkey, coldkey, tao)


def _registered(conn: sqlite3.Connection, netuid: int, hotkey: str) -> sqlite3.Row:
    row = store.neuron_by_hotkey(conn, netuid, hotkey)
    if row is None:
        raise DevChainError("not_registered", f"hotkey {hotkey} is not registered on {netuid}")
    return row


def _rate_limit(last: int | None, limit: int, block: int, what: str) -> None:
    if last is not None and block - last < limit:
        raise DevChainError(
            "rate_limited",
            f"{what} rate limit: last at block {last}, limit {limit} blocks, now {block}; "
            f"retry at block {last + limit}",
        )


def set_weights(
    conn: sqlite3.Connection,
    netuid: int,
    hotkey: str,
    uids: list[int],
    weights: list[float],
    version_key: int,
) -> int:
    """Replace ``hotkey``'s weight row, or with commit-reveal on, commit it hidden (checked
    when it is revealed, as on subtensor). Returns the block it landed in."""
    _, hp = subnet(conn, netuid)
    me = _registered(conn, netuid, hotkey)
    block = store.current_block(conn)
    _rate_limit(me["weights_set_at"], hp.weights_rate_limit, block, "weights")
    if hp.commit_reveal:
        commit_weights(conn, netuid, me, uids, weights, version_key, block)
    else:
        apply_weights(conn, netuid, me, uids, weights, version_key)
    conn.execute(
        "UPDATE neurons SET last_update=?, weights_set_at=? WHERE netuid=? AND uid=?",
        (block, block, netuid, me["uid"]),
    )
    return block


def commit(conn: sqlite3.Connection, netuid: int, hotkey: str, data: bytes) -> int:
    _, hp = subnet(conn, netuid)
    me = _registered(conn, netuid, hotkey)
    if len(data) > hp.max_commitment_bytes:
        raise DevChainError(
            "commitment_too_large",
            f"commitment is {len(data)} bytes; the limit is {hp.max_commitment_bytes}",
        )
    block = store.current_block(conn)
    _rate_limit(me["committed_at"], hp.commitment_rate_limit, block, "commitment")
    conn.execute(
        "INSERT OR REPLACE INTO commitments(netuid, hotkey, data, block) VALUES(?, ?, ?, ?)",
        (netuid, hotkey, data, block),
    )
    conn.execute(
        "UPDATE neurons SET committed_at=? WHERE netuid=? AND uid=?", (block, netuid, me["uid"])
    )
    return block
