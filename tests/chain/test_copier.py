"""A validator that copies others' weights earns less than its stake share on the dev chain
under default settings (commit-reveal on), and does not when weights are public."""

from __future__ import annotations

import random

import pytest

from .devchain_sim import DevChainSim

EPOCHS = 30
WARMUP = 6
STAKES = {"honest-a": 40.0, "honest-b": 30.0, "copier": 30.0}


def copier_ratio(tmp_path, seed: int, **params) -> float:
    """Mean over epochs of the copier's dividend share / its share of validator stake."""
    rng = random.Random(seed)
    sim = DevChainSim(tmp_path / f"copy-{seed}-{params}.sqlite", tempo=5, **params)
    uids = {name: sim.register(name) for name in STAKES}
    miners = [sim.register(f"miner{i}") for i in range(6)]
    for name, tao in STAKES.items():
        sim.stake(name, tao)
    sim.next_epoch()  # permits
    quality = [8.0, 4.0, 2.0, 1.0, 1.0, 0.5]
    ratios = []
    for epoch in range(EPOCHS):
        a, b = rng.sample(range(len(quality)), 2)  # the miners' standing changes over time
        quality[a], quality[b] = quality[b], quality[a]
        honest = dict(zip(miners, quality, strict=True))
        sim.set_weights("honest-a", honest)
        sim.set_weights("honest-b", honest)
        visible: dict[int, float] = {}  # what the copier can read on chain right now
        for name in ("honest-a", "honest-b"):
            for uid, w in sim.weights_of(uids[name]).items():
                visible[uid] = visible.get(uid, 0.0) + STAKES[name] * w
        if visible:
            sim.set_weights("copier", visible)
        sim.next_epoch()
        if epoch >= WARMUP:
            rows = sim.neurons()
            stake = {n: sim.stake_of(n) for n in STAKES}
            share = stake["copier"] / sum(stake.values())
            ratios.append(rows[uids["copier"]]["dividends"] / share)
    return sum(ratios) / len(ratios)


@pytest.mark.timeout(120)
def test_weight_copier_earns_less_than_its_stake_share_by_default(tmp_path):
    seeds = range(3)
    hidden = [copier_ratio(tmp_path, s) for s in seeds]  # defaults: commit-reveal on
    public = [copier_ratio(tmp_path, s, commit_reveal=0) for s in seeds]
    assert all(r < 1.0 for r in hidden), hidden
    assert sum(hidden) / len(hidden) < sum(public) / len(public) - 0.02, (hidden, public)
