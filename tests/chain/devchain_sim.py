"""The dev chain's own rules and epoch driven block by block in-process (no HTTP, no clock).

Tests use it to run many epochs in milliseconds through exactly the code the node runs:
``rules`` for the extrinsics, ``epoch.run_due_epochs`` for the schedule, reveals and Yuma.
"""

from __future__ import annotations

from pathlib import Path

from template.chain.devchain import rules, store
from template.chain.devchain.epoch import run_due_epochs
from template.chain.devchain.params import Genesis

OWNER = "owner-cold"


class DevChainSim:
    def __init__(self, path: Path, netuid: int = 1, **params):
        self.conn = store.open_db(path)
        self.netuid = netuid
        with store.Tx(self.conn) as c:
            rules.apply_genesis(c, Genesis.from_overrides(netuid=netuid, **params))
            # a plain owner coldkey for the subnet (genesis gives it to //Alice)
            c.execute(
                "UPDATE subnets SET owner=?, owner_hotkey=? WHERE netuid=?",
                (OWNER, "owner-hot", netuid),
            )
        self.epochs_run: list[int] = []

    @property
    def block(self) -> int:
        return store.current_block(self.conn)

    def step(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            with store.Tx(self.conn) as c:
                block = rules.produce_block(c, float(self.block + 1))
                if run_due_epochs(c, block):
                    self.epochs_run.append(block)

    def next_epoch(self) -> int:
        """Step until an epoch has run; returns its block."""
        seen = len(self.epochs_run)
        for _ in range(100_000):
            self.step()
            if len(self.epochs_run) > seen:
                return self.epochs_run[-1]
        raise AssertionError("no epoch")

    def tx(self, fn, *args, **kw):
        with store.Tx(self.conn) as c:
            return fn(c, *args, **kw)

    def register(self, hotkey: str, coldkey: str | None = None) -> int:
        coldkey = coldkey or f"cold-{hotkey}"
        self.tx(store.add_balance, coldkey, 1_000.0)
        while True:
            row = self.conn.execute(
                "SELECT COUNT(*) AS c FROM neurons WHERE netuid=? AND registered_at=?",
                (self.netuid, self.block),
            ).fetchone()
            if row["c"] == 0:
                break
            self.step()
        return self.tx(rules.register, self.netuid, coldkey, hotkey)

    def stake(self, hotkey: str, tao: float, coldkey: str | None = None) -> None:
        coldkey = coldkey or store.owner_of(self.conn, hotkey) or f"cold-{hotkey}"
        self.tx(store.add_balance, coldkey, tao)
        self.tx(rules.add_stake, coldkey, hotkey, tao)

    def set_weights(self, hotkey: str, weights: dict[int, float], version_key: int = 0) -> int:
        uids = sorted(weights)
        return self.tx(
            rules.set_weights, self.netuid, hotkey, uids, [weights[u] for u in uids], version_key
        )

    def sudo(self, **params) -> None:
        self.tx(rules.sudo_set, self.netuid, OWNER, params)

    def neurons(self) -> list:
        return store.neurons(self.conn, self.netuid)

    def weights_of(self, uid: int) -> dict[int, float]:
        rows = self.conn.execute(
            "SELECT dst, w FROM weights WHERE netuid=? AND src=?", (self.netuid, uid)
        )
        return {r["dst"]: r["w"] for r in rows}

    def bonds_row(self, uid: int) -> dict[int, float]:
        rows = self.conn.execute(
            "SELECT dst, b FROM bonds WHERE netuid=? AND src=?", (self.netuid, uid)
        )
        return {r["dst"]: r["b"] for r in rows}

    def stake_of(self, hotkey: str) -> float:
        return store.hotkey_stake(self.conn, hotkey)
