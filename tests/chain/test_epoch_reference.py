"""The dev chain pays who subtensor would pay: compared, epoch by epoch, with an independent
reference of the pallet's epoch (``subtensor_epoch_ref.py``) on random multi-epoch cases with
permit churn, exact stake ties, late registrations and an owner uid."""

from __future__ import annotations

import random

import pytest

from template.chain.devchain import store

from . import subtensor_epoch_ref as ref
from .devchain_sim import OWNER, DevChainSim

CASES = 40
EPOCHS = 8
TEMPO = 3


def _set_stakes(sim: DevChainSim, stakes: dict[str, float]) -> None:
    with store.Tx(sim.conn) as c:
        c.execute("DELETE FROM stake")
        for hotkey, tao in stakes.items():
            if tao > 0:
                store.add_stake(c, hotkey, store.owner_of(c, hotkey) or OWNER, tao)


def _set_weights(sim: DevChainSim, uid: int, row: dict[int, float], block: int) -> None:
    total = sum(row.values())
    with store.Tx(sim.conn) as c:
        c.execute("DELETE FROM weights WHERE netuid=? AND src=?", (sim.netuid, uid))
        c.executemany(
            "INSERT INTO weights(netuid, src, dst, w) VALUES(?, ?, ?, ?)",
            [(sim.netuid, uid, j, v / total) for j, v in row.items()],
        )
        c.execute(
            "UPDATE neurons SET last_update=? WHERE netuid=? AND uid=?", (block, sim.netuid, uid)
        )


def _paid_sets(paid: list[float]) -> tuple[set[int], set[int]]:
    top = max(paid)
    return {i for i, p in enumerate(paid) if p > 1e-9}, {
        i for i, p in enumerate(paid) if p >= top - 1e-9
    }


def run_case(tmp_path, seed: int) -> tuple[int, float]:
    rng = random.Random(seed)
    k = rng.choice([2, 3, 4])
    threshold = rng.choice([0.0, 0.0, 15.0])
    yuma3 = seed % 3 == 2  # a third of the cases run the Yuma3 branch
    sim = DevChainSim(
        tmp_path / f"case{seed}.sqlite",
        tempo=TEMPO,
        commit_reveal=0,
        max_allowed_validators=k,
        stake_threshold=threshold,
        activity_cutoff=rng.choice([5000, 8]),
        yuma3=int(yuma3),
    )
    n_first = rng.randint(5, 9)
    late = rng.randint(0, 2)
    owner_at = rng.randrange(n_first)
    hotkeys = []
    for i in range(n_first):
        hotkey = "owner-hot" if i == owner_at else f"hk{i}"
        sim.register(hotkey, OWNER if i == owner_at else None)
        hotkeys.append(hotkey)
    net = ref.Subnet(
        n=n_first,
        tempo=TEMPO,
        max_allowed_validators=k,
        stake_threshold=threshold,
        owner_uid=owner_at,
        yuma3=yuma3,
        activity_cutoff=sim.tx(lambda c: _hp(c, sim.netuid).activity_cutoff),
    )
    compared = 0
    worst = 0.0
    for epoch in range(EPOCHS):
        if epoch == 2:
            for j in range(late):
                sim.register(f"late{j}")
                hotkeys.append(f"late{j}")
        n = len(hotkeys)
        net.n = n
        levels = [0.0, 10.0, 10.0, 20.0, 20.0, 50.0]  # repeated values: exact ties
        stakes = {h: rng.choice(levels) for h in hotkeys}
        _set_stakes(sim, stakes)
        block = sim.block
        for uid in range(n):
            if rng.random() < 0.6:  # some validators keep their old (maybe outdated) row
                cols = rng.sample(range(n), rng.randint(1, min(4, n)))
                _set_weights(sim, uid, {j: float(rng.choice([1, 2, 3])) for j in cols}, block)
        epoch_block = sim.next_epoch()
        rows = store.neurons(sim.conn, sim.netuid)
        paid_dev = [float(r["emission"]) for r in rows]
        weights = [sim.weights_of(uid) for uid in range(n)]
        paid_ref = ref.run_epoch(
            net,
            epoch_block,
            [stakes[h] for h in hotkeys],
            weights,
            [int(r["last_update"]) for r in rows],
            [int(r["registered_at"]) for r in rows],
        )
        assert _paid_sets(paid_dev) == _paid_sets(paid_ref), (seed, epoch, paid_dev, paid_ref)
        worst = max(worst, max(abs(a - b) for a, b in zip(paid_dev, paid_ref, strict=True)))
        compared += 1
    return compared, worst


def _hp(conn, netuid):
    from template.chain.devchain.subnets import subnet

    return subnet(conn, netuid)[1]


@pytest.mark.timeout(120)
def test_dev_chain_agrees_with_the_reference_in_every_epoch(tmp_path):
    total = 0
    worst = 0.0
    for seed in range(CASES):
        compared, diff = run_case(tmp_path, seed)
        total += compared
        worst = max(worst, diff)
    assert total == CASES * EPOCHS
    assert worst < 1e-6  # the same payouts, not just the same payees
