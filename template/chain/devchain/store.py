"""The dev chain's state in SQLite: schema, opening, and small typed accessors.

One connection, used only from the server's event loop; every write runs inside one
transaction, so a crash (kill -9) loses at most the request in flight.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, timestamp REAL NOT NULL);
CREATE TABLE IF NOT EXISTS balances (coldkey TEXT PRIMARY KEY, tao REAL NOT NULL);
CREATE TABLE IF NOT EXISTS owners (hotkey TEXT PRIMARY KEY, coldkey TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stake (
    hotkey TEXT NOT NULL, coldkey TEXT NOT NULL, tao REAL NOT NULL,
    PRIMARY KEY (hotkey, coldkey));
CREATE TABLE IF NOT EXISTS subnets (
    netuid INTEGER PRIMARY KEY, owner TEXT NOT NULL, params TEXT NOT NULL,
    last_epoch INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS neurons (
    netuid INTEGER NOT NULL, uid INTEGER NOT NULL, hotkey TEXT NOT NULL,
    registered_at INTEGER NOT NULL, last_update INTEGER NOT NULL,
    weights_set_at INTEGER, committed_at INTEGER,
    validator_permit INTEGER NOT NULL DEFAULT 0,
    incentive REAL NOT NULL DEFAULT 0, dividends REAL NOT NULL DEFAULT 0,
    consensus REAL NOT NULL DEFAULT 0, trust REAL NOT NULL DEFAULT 0,
    validator_trust REAL NOT NULL DEFAULT 0, rank REAL NOT NULL DEFAULT 0,
    emission REAL NOT NULL DEFAULT 0, pruning_score REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (netuid, uid), UNIQUE (netuid, hotkey));
CREATE TABLE IF NOT EXISTS weights (
    netuid INTEGER NOT NULL, src INTEGER NOT NULL, dst INTEGER NOT NULL, w REAL NOT NULL,
    PRIMARY KEY (netuid, src, dst));
CREATE TABLE IF NOT EXISTS bonds (
    netuid INTEGER NOT NULL, src INTEGER NOT NULL, dst INTEGER NOT NULL, b REAL NOT NULL,
    PRIMARY KEY (netuid, src, dst));
CREATE TABLE IF NOT EXISTS commitments (
    netuid INTEGER NOT NULL, hotkey TEXT NOT NULL, data BLOB NOT NULL, block INTEGER NOT NULL,
    PRIMARY KEY (netuid, hotkey));
CREATE TABLE IF NOT EXISTS weight_commits (
    netuid INTEGER NOT NULL, hotkey TEXT NOT NULL, epoch INTEGER NOT NULL, block INTEGER NOT NULL,
    uids TEXT NOT NULL, weights TEXT NOT NULL, version_key INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reveals (
    netuid INTEGER NOT NULL, hotkey TEXT NOT NULL, commit_block INTEGER NOT NULL,
    block INTEGER NOT NULL, ok INTEGER NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen_nonces (
    account TEXT NOT NULL, nonce INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (account, nonce));
"""

# Columns later versions added to existing tables (an old database is upgraded on open).
ADDED_COLUMNS = {
    "subnets": (
        ("owner_hotkey", "TEXT"),
        ("epoch_index", "INTEGER NOT NULL DEFAULT 0"),
        ("pending_epoch_at", "INTEGER NOT NULL DEFAULT 0"),
    ),
}

NEURON_COLUMNS = (
    "uid, hotkey, registered_at, last_update, weights_set_at, committed_at, validator_permit, "
    "incentive, dividends, consensus, trust, validator_trust, rank, emission, pruning_score"
)


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the database in WAL mode with the schema applied."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    for table, columns in ADDED_COLUMNS.items():
        have = {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
    return conn


class Tx:
    """``with Tx(conn):`` runs the block as one IMMEDIATE transaction (rolled back on error)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except Exception:
                self.conn.execute("ROLLBACK")
                raise
        self.conn.execute("ROLLBACK")


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else row["value"]


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))


def current_block(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(number) AS n FROM blocks").fetchone()
    return int(row["n"]) if row["n"] is not None else 0


def balance(conn: sqlite3.Connection, coldkey: str) -> float:
    row = conn.execute("SELECT tao FROM balances WHERE coldkey=?", (coldkey,)).fetchone()
    return float(row["tao"]) if row else 0.0


def add_balance(conn: sqlite3.Connection, coldkey: str, tao: float) -> None:
    conn.execute(
        "INSERT INTO balances(coldkey, tao) VALUES(?, ?) "
        "ON CONFLICT(coldkey) DO UPDATE SET tao = tao + excluded.tao",
        (coldkey, tao),
    )


def add_stake(conn: sqlite3.Connection, hotkey: str, coldkey: str, tao: float) -> None:
    conn.execute(
        "INSERT INTO stake(hotkey, coldkey, tao) VALUES(?, ?, ?) "
        "ON CONFLICT(hotkey, coldkey) DO UPDATE SET tao = tao + excluded.tao",
        (hotkey, coldkey, tao),
    )


def share_stake(conn: sqlite3.Connection, hotkey: str, tao: float) -> None:
    """Add ``tao`` to ``hotkey``'s stake, split over its stakers (nominators) pro rata."""
    rows = conn.execute("SELECT coldkey, tao FROM stake WHERE hotkey=?", (hotkey,)).fetchall()
    total = sum(float(r["tao"]) for r in rows)
    if total <= 0:
        owner = owner_of(conn, hotkey)
        if owner is not None:
            add_stake(conn, hotkey, owner, tao)
        return
    for r in rows:
        add_stake(conn, hotkey, r["coldkey"], tao * float(r["tao"]) / total)


def hotkey_stake(conn: sqlite3.Connection, hotkey: str) -> float:
    row = conn.execute("SELECT SUM(tao) AS t FROM stake WHERE hotkey=?", (hotkey,)).fetchone()
    return float(row["t"] or 0.0)


def owner_of(conn: sqlite3.Connection, hotkey: str) -> str | None:
    row = conn.execute("SELECT coldkey FROM owners WHERE hotkey=?", (hotkey,)).fetchone()
    return None if row is None else row["coldkey"]


def neurons(conn: sqlite3.Connection, netuid: int) -> list[sqlite3.Row]:
    return conn.execute(
        f"SELECT {NEURON_COLUMNS} FROM neurons WHERE netuid=? ORDER BY uid", (netuid,)
    ).fetchall()


def neuron_by_hotkey(conn: sqlite3.Connection, netuid: int, hotkey: str) -> sqlite3.Row | None:
    return conn.execute(
        f"SELECT {NEURON_COLUMNS} FROM neurons WHERE netuid=? AND hotkey=?", (netuid, hotkey)
    ).fetchone()


def check_and_store_nonce(
    conn: sqlite3.Connection, account: str, nonce: int, now: float, retention: float
) -> bool:
    """Record (account, nonce); False if it was already seen (a replay). Old entries expire."""
    conn.execute("DELETE FROM seen_nonces WHERE expires < ?", (now,))
    cur = conn.execute(
        "INSERT OR IGNORE INTO seen_nonces(account, nonce, expires) VALUES(?, ?, ?)",
        (account, nonce, now + retention),
    )
    return cur.rowcount == 1
