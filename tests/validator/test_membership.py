"""A validator's bookkeeping when the subnet changes under it, on a dev chain.

- A scored miner that drops its bucket commitment is missing (its score decays), not frozen.
- A validator started after the leader published a window's aggregate skips that window
  (its model already holds it) instead of judging it and failing in every retry.
- A window whose work fails part way is retried without counting its evidence twice.
- A leader retrying a window (or restarted) after publishing its peer list keeps that list.
- A leader whose list's step would raise the loss publishes it with no peers.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from template.protocol.catchup import fetch_aggregate, fetch_peer_list
from template.protocol.documents import PeerList
from template.validator import loop as loop_module
from template.validator.step_check import check_outer_step

from .harness import Subnet, running_subnet, shapes_of


def fails_once(method):
    """``method`` raising RuntimeError on its first call; and the windows it was called for."""
    calls: list[int] = []

    async def flaky(*args):
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError("failed part way")
        await method(*args)

    return flaky, calls


async def _two_miners(net: Subnet, *validators: tuple[str, float]):
    """Two honest uploaders and the validator keys ``(name, stake)``, permitted."""
    miners = [
        await net.add_uploader("honest6", "honest", steps=6),
        await net.add_uploader("honest4", "honest", steps=4),
    ]
    for name, stake in validators:
        await net.add_validator_key(name, stake)
    await net.wait_permits()
    return miners


async def _run(net: Subnet, validators, windows: int) -> int:
    for _ in range(windows):
        w = await net.next_window()
        await net.upload_window(w, validators[0].model)
        await net.after_cutoff(w)
        for v in validators:
            await v.run_window(w)
    return w


CHAIN = dict(block_time=0.2, tempo=5)


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_a_miner_that_drops_its_commitment_is_missing(tmp_path, tiny_dataset):
    async with running_subnet(tmp_path, tiny_dataset, **CHAIN) as net:
        honest = await _two_miners(net, ("leader", 100.0))
        v = await net.start_validator("leader")
        await _run(net, [v], 3)
        before = dict(v.scores.scores)
        quitter = max(honest, key=lambda u: before.get(u.uid, 0.0))
        assert before.get(quitter.uid, 0.0) > 0, before
        # it stops uploading and replaces its bucket commitment with garbage
        await (await net.chain.client(quitter.key)).commit(b"not a bucket")
        net.uploaders.remove(quitter)
        for _ in range(2):
            w = await _run(net, [v], 1)
            assert quitter.uid in v.last_report.missing, (w, v.last_report.missing)
        assert v.scores.scores[quitter.uid] < before[quitter.uid]


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_a_late_starter_skips_an_applied_window_and_a_retry_counts_once(
    tmp_path, tiny_dataset
):
    async with running_subnet(tmp_path, tiny_dataset, **CHAIN) as net:
        honest, _ = await _two_miners(net, ("leader", 100.0), ("follower", 50.0))
        leader = await net.start_validator("leader")
        w = await _run(net, [leader], 1)
        # a fresh follower catches up through w from the leader's documents
        follower = await net.start_validator("follower")
        assert follower.state.applied_through == w and follower.state.window == -1
        report = await follower.run_window(w)
        assert report.values == {} and follower.state.window == w
        assert not follower.evidence.v and not follower.scores.scores

        # the next window's settle fails once: the retry must count it once
        follower.sync.settle, calls = fails_once(follower.sync.settle)
        w = await _run(net, [leader], 1)
        with pytest.raises(RuntimeError):
            await follower.run_window(w)
        assert not follower.evidence.v and not follower.scores.scores
        report = await follower.run_window(w)
        assert calls == [w, w] and honest.uid in report.evaluated
        assert follower.evidence.v[honest.uid] == pytest.approx(1.0)  # one window's z
        value = report.values[honest.uid]
        assert follower.scores.scores[honest.uid] == pytest.approx(follower.cfg.score_alpha * value)


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_a_leader_retrying_a_window_keeps_the_peer_list_it_published(
    tmp_path, tiny_dataset, monkeypatch
):
    async with running_subnet(tmp_path, tiny_dataset, **CHAIN) as net:
        hp = net.hp
        await _two_miners(net, ("leader", 100.0))
        leader = await net.start_validator("leader")
        await _run(net, [leader], 2)  # evidence: the next list holds both uploads
        # killed after publishing its list, before applying it
        leader.sync._lead, calls = fails_once(leader.sync._lead)
        w = await net.next_window()
        await net.upload_window(w, leader.model)
        await net.after_cutoff(w)
        with pytest.raises(RuntimeError):
            await leader.run_window(w)
        first = await fetch_peer_list(leader.directory, leader.hotkey, w, hp)
        assert first is not None and first.peers
        leader.sync.own_lists.clear()  # a restarted leader holds none of its lists

        def other_list(window, *args):  # the retry's judge would pick another list
            return PeerList(window, first.peers[:0], (), "scores", first.hparams_hash)

        monkeypatch.setattr(loop_module, "choose_peers", other_list)
        await leader.run_window(w)
        assert calls == [w, w]
        assert leader.state.applied_through == w
        again = await fetch_peer_list(leader.directory, leader.hotkey, w, hp)
        agg = await fetch_aggregate(leader.directory, w, hp, shapes_of(leader.model))
        assert again.peers == first.peers and agg is not None and agg.peers == first.peers


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_a_leader_publishes_no_step_when_its_lists_step_would_raise_the_loss(
    tmp_path, tiny_dataset, monkeypatch
):
    """The leader's list goes out with no peers when its step check finds the step harmful
    (here forced, on the real measurement): every node then keeps the model as it was. A
    follower checks nothing; its own list (a heartbeat) keeps its peers."""
    async with running_subnet(tmp_path, tiny_dataset, **CHAIN) as net:
        hp = net.hp
        await _two_miners(net, ("leader", 100.0), ("follower", 50.0))
        leader = await net.start_validator("leader")
        follower = await net.start_validator("follower")
        await _run(net, [leader, follower], 2)  # evidence: the next list holds uploads
        checked = []

        def harmful(*args):
            got = check_outer_step(*args)
            checked.append(got)
            return dataclasses.replace(got, harmful=True)

        monkeypatch.setattr(loop_module, "check_outer_step", harmful)
        before = [
            {n: p.detach().clone() for n, p in v.model.named_parameters()}
            for v in (leader, follower)
        ]
        w = await _run(net, [leader, follower], 1)
        assert leader.last_report.is_leader and not follower.last_report.is_leader
        (check,) = checked  # the leader's alone
        assert check.window == w and check.peers and check.sequences > 0
        published = await fetch_peer_list(leader.directory, leader.hotkey, w, hp)
        assert published.peers == () and leader.last_report.peers == []
        heartbeat = await fetch_peer_list(leader.directory, follower.hotkey, w, hp)
        assert heartbeat.peers
        for v, params in zip((leader, follower), before, strict=True):
            assert v.state.applied_through == w
            for name, p in v.model.named_parameters():
                assert torch.equal(p, params[name]), name
        status = json.loads((leader.state_dir / "status.json").read_text())
        assert status["outer_step"]["applied"] is False
        assert status["outer_step"]["peers"] == list(check.peers)
