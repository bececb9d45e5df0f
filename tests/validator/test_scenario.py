"""Honest miners race adversaries over several windows against two validators on a dev chain.

Then: the validator restarts with its scores, and the leader dies and the fallback leads."""

from __future__ import annotations

import logging

import pytest
import torch

from template.chain.devchain.testing import running_devchain
from template.miner.verdicts import read_own_verdicts
from template.node.status import ValidatorStatus, read_status, status_keys
from template.protocol.fingerprint import fingerprints_match, model_fingerprint
from template.storage.keys import peers_key
from template.storage.local_server import start_local_s3
from template.training.model import build_model
from template.validator.evaluate import fixed_heldout_loss

from .harness import Subnet, small_hparams

ADVERSARIES = [
    "copier",
    "noise",
    "zero",
    "replayer",
    "late",
    "nan",
    "forged",
    "oversized",
    "wrong_pages",
]


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_honest_beat_adversaries_restart_and_failover(tmp_path, tiny_dataset, caplog):
    caplog.set_level(logging.INFO, logger="template.validator")
    # 40-block windows: the late upload lands 11 blocks after the cut-off and the leader still
    # makes its peer list's deadline (end(w + 1) - 3); with 20 it never did, and the fail-over
    # check below depended on whether the leader made it in the one window without a late upload
    hp = small_hparams().replace(**{"window.blocks_per_window": 40, "window.publish_blocks": 24})
    s3 = start_local_s3()
    async with running_devchain(
        tmp_path, block_time=0.2, tempo=5, max_allowed_validators=2
    ) as chain:
        net = Subnet(chain, s3, tmp_path, hp, tiny_dataset)
        try:
            honest = [
                await net.add_uploader("honest6", "honest", steps=6),
                await net.add_uploader("honest4", "honest", steps=4),
                await net.add_uploader("honest2", "honest", steps=2),
            ]
            bad = {k: await net.add_uploader(k, k) for k in ADVERSARIES}
            await net.add_validator_key("leader", 100.0)
            await net.add_validator_key("follower", 50.0)
            await net.wait_permits()
            v0 = await net.start_validator("leader")
            v1 = await net.start_validator("follower")

            reports = []
            for _ in range(4):
                w = await net.next_window()
                await net.upload_window(w, v0.model)
                await net.late_uploads(w, v0.model)
                await net.after_cutoff(w)
                r0 = await v0.run_window(w)
                r1 = await v1.run_window(w)
                reports.append((r0, r1))
                assert r0.is_leader and not r1.is_leader
                assert await v0.sync.bucket.exists(peers_key(w)), "leader published no list"
                assert r0.rejected.keys() & {u.uid for u in honest} == set(), r0.rejected
                assert (
                    v1.sync.applier.in_sync
                    and v1.state.applied_through == w == v0.state.applied_through
                )

            # every validator publishes its verdicts; a miner reads its own from each of them
            r0, r1 = reports[-1]
            for u in [*honest, bad["late"], bad["forged"]]:
                seen = await read_own_verdicts(v0.directory, hp, w, u.uid)
                assert set(seen) == {v0.hotkey, v1.hotkey}, u.name
                mine = seen[v0.hotkey]
                assert mine.hotkey == u.hotkey and mine.value == pytest.approx(r0.values[u.uid])
                if u.uid in r0.decisions and r0.decisions[u.uid].rejection is None:
                    assert mine.verdict == r0.decisions[u.uid].verdict, u.name
                else:
                    assert mine.verdict == "rejected" and mine.reason, u.name
            late = await read_own_verdicts(v0.directory, hp, w, bad["late"].uid)
            assert late[v0.hotkey].reason.startswith("late"), late

            # undecided evidence is measured on more sequences (--eval.boost), and said so
            boosted = [d for r, _ in reports for d in r.decisions.values() if d.boosted]
            assert boosted and all("more sequences" in str(d) for d in boosted)
            r0, _ = reports[-1]
            for kind, u in bad.items():  # rejected, or measured and never credited
                d = r0.decisions.get(u.uid)
                earns = d is not None and d.credited
                assert u.uid in r0.rejected or u.uid in r0.missing or not earns, kind
            for v in (v0, v1):
                weights = v.state.weights
                # every weight goes to honest miners. Which of them is proven within these 4
                # windows is evidence noise, a rate for the benchmark: honest4 was in 4 of 6 runs
                # on 2026-12-07 (its window-3 evidence Z at the leader 2.22-2.37 over 10 runs, the
                # bar 2.33). honest6 is the copier's victim (no first-seen watcher here): never
                # rejected, its copy unpaid
                paid = [weights.get(u.uid, 0.0) for u in honest]
                assert max(paid) > 0 and sum(paid) == pytest.approx(sum(weights.values())), weights
                for kind, u in bad.items():
                    assert weights.get(u.uid, 0.0) == 0, (kind, weights)
                # no honest miner's score goes negative. Whether 4 steps out-earn 2 is not decided
                # here: all three claim the same share of the window, which caps every value
                # (0.25), so the pay ramp, that is per-window evidence noise, orders them. This
                # ordering failed in 4 of 7 runs on 2026-12-04, at d5c05fe too. The lazy miner's pay
                # is a rate, measured by scripts/bench_incentives.py (docs/scoring.md)
                s = v.scores.scores
                assert all(s.get(u.uid, 0.0) >= 0 for u in honest), s

            status = read_status(v0.state_dir)
            keys = set(status_keys(ValidatorStatus))  # the one definition of the keys
            assert keys <= set(status) and status["is_leader"] and status["weights_set"] >= 1
            initial = fixed_heldout_loss(build_model(hp.model), net.ds, v0.cfg.eval_status_pages)
            assert status["heldout_loss"] < initial
            assert status["decisions"] and status["rejected"]  # every verdict is kept

            # restart the follower: scores, model position and sampling secret survive
            before = dict(v1.scores.scores)
            applied, secret = v1.state.applied_through, v1.secret
            nxt = reports[-1][1].window + 1
            peers = v1._last_peers(nxt)  # the mix bar's and the clip's reference next window
            assert peers, "the follower chose no peers; the restart below would test nothing"
            await v1.close()
            v1 = await net.start_validator("follower")
            assert v1.scores.scores == before and v1.state.applied_through == applied
            assert not v1.sync.own_lists and v1._last_peers(nxt) == peers  # from the state
            assert not v1.cache  # the last window's uploads lived in memory
            assert v1.secret == secret == v1.measurer.salt != v0.secret

            # a follower whose model drifted notices the leader's fingerprint and re-syncs
            with torch.no_grad():
                next(v1.model.parameters()).add_(0.01)
            w = await net.next_window()
            await net.upload_window(w, v0.model)
            await net.after_cutoff(w)
            reports.append((await v0.run_window(w), await v1.run_window(w)))
            recalled = v1.cache.candidates(w - 1)  # w - 1 recalled at start, then released:
            assert {u.uid for u in honest} <= set(recalled)
            assert all(c.upload is None and c.blob for c in recalled.values() if c.reason is None)
            assert v1.cache.earlier(w + 1)[-1].window == w  # and w itself once done
            assert v1.sync.applier.fingerprint_ok is False and v1.sync.applier.in_sync
            assert fingerprints_match(model_fingerprint(v1.model), model_fingerprint(v0.model))

            # kill the leader: the follower takes over within leader_timeout_windows
            last_leader_window = reports[-1][0].window
            assert await v0.sync.bucket.exists(peers_key(last_leader_window))
            timeout = hp.window.leader_timeout_windows
            # (the follower keeps processing every window, publishing its heartbeat)
            for w in range(last_leader_window + 1, last_leader_window + timeout + 2):
                await net.after_cutoff(w)
                r1 = await v1.run_window(w)
                # the leader is passed over once it was silent for leader_timeout_windows
                assert r1.is_leader == (w - last_leader_window > timeout), (w, last_leader_window)
                assert v1.state.applied_through == (w if r1.is_leader else w - 1)
            assert v1.state.weights_set >= 1
        finally:
            await net.close()
            s3.stop()
