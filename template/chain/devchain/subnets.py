"""Read-only look-ups of a subnet's stored row, shared by the extrinsics, reveals and the epoch."""

from __future__ import annotations

import sqlite3

from . import store
from .errors import DevChainError
from .params import SubnetHyperparams


def netuids(conn: sqlite3.Connection) -> list[int]:
    return [r["netuid"] for r in conn.execute("SELECT netuid FROM subnets ORDER BY netuid")]


def subnet_row(conn: sqlite3.Connection, netuid: int) -> sqlite3.Row:
    """The subnet's stored row (owner, owner_hotkey, params, last_epoch, epoch_index, ...)."""
    row = conn.execute("SELECT * FROM subnets WHERE netuid=?", (netuid,)).fetchone()
    if row is None:
        known = ", ".join(str(n) for n in netuids(conn)) or "none"
        raise DevChainError(
            "subnet_not_found", f"subnet {netuid} does not exist on this chain (netuids: {known})"
        )
    return row


def subnet(conn: sqlite3.Connection, netuid: int) -> tuple[str, SubnetHyperparams]:
    """(owner coldkey, hyperparameters) of ``netuid``; not_found if it does not exist."""
    row = subnet_row(conn, netuid)
    return row["owner"], SubnetHyperparams.from_json(row["params"])


def owner_uid(conn: sqlite3.Connection, netuid: int) -> int | None:
    """The uid the subnet owner's hotkey holds, if it is registered."""
    hotkey = subnet_row(conn, netuid)["owner_hotkey"]
    row = store.neuron_by_hotkey(conn, netuid, hotkey) if hotkey else None
    return None if row is None else int(row["uid"])
