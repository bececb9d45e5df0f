"""Honest and adversary miners against the real validator decision path, in one process.

    python scripts/bench_incentives.py --json                 # tiny + small presets, 3 seeds x 24
    python scripts/bench_incentives.py --quick --json         # CI-sized smoke run

Per run: one validator (``Validator.run_window``: gather, verify, copies and mixes, measure,
judge, score, weights, peer list, leader aggregate; ``--validators K``: K of them, each with
its own secret sample, the first leading and Yuma paying from all their weights),
``--honest`` honest miners, a lazy miner
(a quarter of the steps) and one miner per adversary class (scripts/incentive_sim.py). Blocks
advance only when the benchmark says (scripts/incentive_net.py), after every miner uploaded,
so CPU load never makes a window missed. Each run seed gives its run its own initial model
and page draws (``run_start``; ``--same-start``: the preset's for every run, as before
2026-12-06). The validator polls the uploads (its first-seen clock) before they land, after
they all landed (copiers land in the same polling interval as their victims: the hardest case
for the clock) and after the cut-off.

Uploads are sealed (training/seal.py) and their keys published after the cut-off, so by
default an adversary that uses the others' uploads (copiers, aggregator, ALIE, mixers) works
from the previous window's revealed ones: the most a miner can read before its own upload
is due. ``--leaked-seal`` gives them the current window's uploads instead, as if every seal
key leaked early: it measures the defences behind the seal (copy, mix and page-fit checks).

Prints one JSON object (``--json``) with the issue's figures and which targets were met.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import incentive_sim as sim  # noqa: E402
from incentive_net import ChainState, FakeChain, MemoryStore  # noqa: E402
from incentive_sim import preset  # noqa: E402

from template.chain.devchain.yuma import yuma_epoch  # noqa: E402
from template.hparams import HParams, HParamsError, hparams_hash  # noqa: E402
from template.protocol.directory import PeerDirectory  # noqa: E402
from template.protocol.uploads import stored_objects  # noqa: E402
from template.protocol.windows import WindowClock  # noqa: E402
from template.signing import dev_keypair  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.training.outer import snapshot  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402
from template.validator.evaluate import fixed_heldout_loss  # noqa: E402
from template.validator.judge import JudgeRules  # noqa: E402
from template.validator.loop import Validator  # noqa: E402
from template.validator.measure import Measurer  # noqa: E402
from template.validator.state import ValidatorState  # noqa: E402
from template.validator.watch import poll_round  # noqa: E402

# lazy_mixer trains like the lazy miner and pads its delta with a copied share of the honest
# mean; full_claim_mixer (opt-in) does the same but claims a whole window's pages. Both do
# some real work: judged against the lazy miner's pay, not the adversaries' 2%
MIXERS = ("lazy_mixer", "full_claim_mixer")
# lazy_inflated (opt-in) trains like the lazy miner and multiplies its values by INFLATE;
# amplifier (opt-in) trains honestly and does the same. Both do real work: each should earn
# what its work is worth in the outer step, where a delta is clipped to the median norm
INFLATED, INFLATE = ("lazy_inflated", "amplifier"), 4.0
# shadow (opt-in) trains a full window on the pages of the first honest miner (its victim),
# in its own shuffled order, and claims its own pages: it aims to raise the reference's fit
# to the victim's pages and so cancel the victim's evidence; poacher (opt-in) trains its own
# pages and the victim's (twice an honest miner's work) to the same end, and is paid for its
# own (real work: not an adversary in the shares). Both know the victim's public assignment
SHADOW, POACHER = "shadow", "poacher"
# split_shadow (opt-in, repeatable): K of them split the victim's window between them, the
# i-th training its batches i, i + K, ...: the victim is then close to their sum but to no
# single one of them, a mix of several uploads that are themselves not copies
SPLIT = "split_shadow"
SHADOWS = (SHADOW, POACHER, SPLIT)
ADVERSARIES = [c for c in sim.CLASSES if c not in ("honest", "lazy", POACHER, *MIXERS, *INFLATED)]
LAZY_MIX_COSINE = 0.45  # the lazy mixer keeps its cosine to the honest sum under this
# coasting_copier (opt-in) trains honestly for COAST_AFTER windows, banking evidence, then
# uploads copies of an honest miner's upload; its windows to weight 0 count from then
COASTER, COAST_AFTER = "coasting_copier", 12
# older_copier (opt-in) sends an honest upload of two windows back with 20% of its indices
# moved (the stale-copy check first compared the last window alone; the replay memory
# catches exact and re-quantised copies of any window)
OLDER = "older_copier"
# lazy_wrong_pages (opt-in) trains a quarter of the steps, as the lazy miner, on pages it was
# not assigned, and claims as many of its own: the null of a short claim (2 pages on tiny),
# whose clustered own variance has 1 degree of freedom
SHORT_NULL = "lazy_wrong_pages"
WRONG_PAGES = ("wrong_pages", SHORT_NULL)  # train on pages they were not assigned
DEFAULT_CLASSES = [
    "lazy",
    "lazy_mixer",
    *(c for c in ADVERSARIES if c not in (COASTER, OLDER, SHORT_NULL, *SHADOWS)),
]
LAZY_KINDS = ("lazy", "lazy_inflated", SHORT_NULL, *MIXERS)  # train a quarter of the steps
# each does at least an honest window's work on its own pages and is paid for it: besides
# issue 15's equal share (1 / honest miners), an honest miner's share is also given against
# 1 / the uids of these classes (min_honest_share_of_full_work_equal)
FULL_WORK = ("honest", "amplifier", POACHER)


class Run:
    """One simulated subnet: miners of every class, one validator."""

    def __init__(
        self,
        hp: HParams,
        ds,
        tmp: Path,
        seed: int,
        honest: int,
        classes: list[str],
        overrides=None,
        mix_cosine: float = LAZY_MIX_COSINE,
        leaked_seal: bool = False,
        inflate: float = INFLATE,
        carry_steps: int = -1,
        validators: int = 1,
    ):
        self.hp, self.ds, self.seed = hp, ds, seed
        self.carry_steps = carry_steps  # >= 0: training miners carry on (sim.train_carried)
        self.previous = None  # the global model of the previous window's uploads
        self.mix_cosine, self.leaked_seal, self.inflate = mix_cosine, leaked_seal, inflate
        self.revealed = None  # (honest deltas, dense, norms) of the last window, once revealed
        self.revealed_before = None  # ... of the window before it
        self.older_seen = None  # what the older copier reads this window
        self.state, self.store = ChainState(), MemoryStore()
        self.clock = WindowClock(hp.window)
        kinds = ["honest"] * honest + classes
        self.actors = [
            sim.Actor(f"{k}{i}", k, dev_keypair(f"//Alice//bench{seed}/{i}"))
            for i, k in enumerate(kinds)
        ]
        for a in self.actors:
            a.uid = len(self.state.hotkeys)
            self.state.hotkeys.append(a.key.ss58_address)
            self.store.bucket(a.key.ss58_address, f"miner-{a.uid}")
            self.state.commitments[a.key.ss58_address] = self.store.commitment(a.key.ss58_address)
            if a.kind == "backdating_copier":
                self.store.buckets[a.key.ss58_address].backdate = 1.0
        torch.manual_seed(seed)
        model = build_model(hp.model)
        self.vs = [
            self._validator(i, model if i == 0 else copy.deepcopy(model), tmp, overrides)
            for i in range(validators)
        ]
        self.v = self.vs[0]  # the leader (the most stake): its model is the one miners train
        self.reports: list = []  # every validator's report of the last window, the leader's first
        self.gen = torch.Generator().manual_seed(seed)
        self.train_seconds = 0.0
        self.trainings, self.full_seconds = 0, 0.0
        self.mix_shares: dict[str, list[float]] = {}  # each mixer's copied share per window
        self.windows_done = 0

    def _validator(self, i: int, model, tmp: Path, overrides) -> Validator:
        """Validator ``i``: its own key, secret (its hotkey), state, model copy and first-seen
        clock. Validator 0 has the most stake, so it leads; the others follow its aggregate
        (stakes 100, 99.99, ...: about equal in Yuma)."""
        name = "validator" if i == 0 else f"validator{i}"
        vkey = dev_keypair(f"//Alice//bench{self.seed}/{name}")
        vhk = vkey.ss58_address
        self.state.hotkeys.append(vhk)
        self.state.stake[vhk] = 100.0 - 0.01 * i
        bucket = self.store.bucket(vhk, name)
        self.state.commitments[vhk] = self.store.commitment(vhk)
        chain = FakeChain(self.state, vhk)
        directory = PeerDirectory(chain, allow_private=True)
        directory.client = self.store.client  # the in-memory seam
        # blocks advance only between the phases (no validator is ever late): the leader's
        # deadline must not cut its measurements by this process's training time
        base = dict(leader_follow_wait=0.0, eval_meet_deadline=False)
        cfg = ValidatorConfig(**{**base, **(overrides or {})})
        return Validator(
            chain=chain,
            key=vkey,
            uid=len(self.state.hotkeys) - 1,
            hp=self.hp,
            dataset=self.ds,
            cfg=cfg,
            state_dir=tmp / (f"v{self.seed}" if i == 0 else f"v{self.seed}_{i}"),
            state=ValidatorState(hparams_hash=hparams_hash(self.hp)),
            model=model,
            directory=directory,
            bucket=bucket,
            measurer=Measurer(
                model,
                self.ds,
                own=cfg.eval_own_seqs,
                control=cfg.eval_control_seqs,
                salt=vhk,
                control_pool=cfg.eval_control_pool,
            ),
            secret=vhk,  # no simulated miner reads it; the recorded runs were seeded so
        )

    def _train(self, a: sim.Actor, w: int, page_uid: int, steps: int):
        if a.trainee is None:
            a.trainee = sim.new_trainee(self.v.model, self.hp)
        t0 = time.perf_counter()
        if self.carry_steps >= 0:
            batches, pages = sim.window_batches(self.ds, self.hp, w, page_uid, steps)
            delta = sim.train_carried(
                a.trainee, self.previous, self.v.model, self.hp, batches, w, self.carry_steps
            )
            out = delta, pages
        else:
            out = sim.train_window(a.trainee, self.v.model, self.hp, self.ds, w, page_uid, steps)
        dt = time.perf_counter() - t0
        self.train_seconds += dt
        if steps == self.hp.train.inner_steps:  # a full upload's training cost
            self.full_seconds, self.trainings = self.full_seconds + dt, self.trainings + 1
        return out

    def _train_victim(self, a: sim.Actor, w: int, steps: int, with_own: bool):
        """The shadows' and the poacher's window: the first honest miner's batches (a split
        shadow: its share of them; the poacher: and its own), shuffled with the run's
        generator; returns (delta, own pages)."""
        if a.trainee is None:
            a.trainee = sim.new_trainee(self.v.model, self.hp)
        victim = next(b.uid for b in self.actors if b.kind == "honest")
        batches, _ = sim.window_batches(self.ds, self.hp, w, victim, steps)
        if a.kind == SPLIT:
            split = [b.uid for b in self.actors if b.kind == SPLIT]
            batches = batches[split.index(a.uid) :: len(split)]
        own, pages = sim.window_batches(self.ds, self.hp, w, a.uid, steps)
        seqs = torch.cat(batches + (own if with_own else []))
        seqs = seqs[torch.randperm(len(seqs), generator=self.gen)]
        bs = self.hp.train.batch_size
        shuffled = [seqs[i : i + bs] for i in range(0, len(seqs), bs)]
        t0 = time.perf_counter()
        delta = sim.train_from(a.trainee, self.v.model, self.hp, shuffled, w)
        self.train_seconds += time.perf_counter() - t0
        return delta, pages

    def _claim(self, a: sim.Actor, w: int, n: int) -> list[int]:
        return self.ds.layout.pages(w, a.uid, n)

    async def _put(self, a: sim.Actor, w: int, blob: bytes) -> None:
        """Store ``blob`` sealed; its key waits for ``reveal``."""
        (name, sealed), key = stored_objects(blob, window=w, hotkey=a.key.ss58_address)
        await self.store.buckets[a.key.ss58_address].put_bytes(name, sealed)
        a.history[w], a.reveal = blob, key

    async def reveal(self) -> None:
        """Every actor publishes the seal key of its upload (after the cut-off)."""
        for a in self.actors:
            if a.reveal is not None:
                await self.store.buckets[a.key.ss58_address].put_bytes(*a.reveal)
                a.reveal = None

    def _sign(self, a: sim.Actor, delta, w: int, n_pages: int, steps: int) -> bytes:
        return sim.sign(delta, self.hp, a.key, a.uid, w, self._claim(a, w, n_pages), steps)

    async def uploads(self, w: int) -> None:
        """Every actor's upload of window ``w`` (honest first, then those who use them)."""
        hp, steps = self.hp, self.hp.train.inner_steps
        n_pages = -(-steps * hp.train.batch_size // hp.data.seqs_per_page)
        honest: list = []
        coasting = self.windows_done >= COAST_AFTER
        for a in self.actors:
            if (
                a.kind in ("honest", "lazy", *WRONG_PAGES, *SHADOWS, *MIXERS, *INFLATED)
                or (a.kind == "replay" and not a.history)
                or (a.kind == COASTER and not coasting)
            ):
                s = max(1, steps // 4) if a.kind in LAZY_KINDS else steps
                if a.kind in SHADOWS:
                    delta, pages = self._train_victim(a, w, s, a.kind == POACHER)
                    await self._put(a, w, self._sign(a, delta, w, len(pages), s))
                    continue
                page_uid = a.uid + 1000 if a.kind in WRONG_PAGES else a.uid
                delta, pages = self._train(a, w, page_uid, s)
                if a.kind in MIXERS:  # uploads once it has seen the honest uploads
                    claim = n_pages if a.kind == "full_claim_mixer" else len(pages)
                    a.own = (delta, claim, s)
                    continue
                if a.kind in INFLATED:
                    delta = sim.scaled(delta, self.inflate)
                await self._put(a, w, self._sign(a, delta, w, len(pages), s))
                if a.kind == "honest":
                    honest.append(delta)
        if self.carry_steps >= 0:  # what the next window's miners start from
            self.previous = snapshot(self.v.model)
        norms = [
            sum(float(t.values().pow(2).sum()) for t in d.tensors.values()) ** 0.5 for d in honest
        ]
        current = (honest, [d.to_dense() for d in honest], norms)
        seen = current if self.leaked_seal else self.revealed  # what adversaries can read
        # two windows back (one back with a leaked seal): what the older copier sends again
        self.older_seen = self.revealed if self.leaked_seal else self.revealed_before
        self.revealed_before, self.revealed = self.revealed, current
        for a in self.actors:
            if a.kind in MIXERS:  # its own lazy delta padded with the honest mean
                own, claim, s = a.own
                dense = [] if seen is None else seen[1]
                mixed, c = sim.lazy_mix(own, dense, hp, below=self.mix_cosine)
                self.mix_shares.setdefault(a.kind, []).append(c)
                await self._put(a, w, self._sign(a, mixed, w, claim, s))
                continue
            if a.kind in SHADOWS or (a.kind == COASTER and not coasting):
                continue  # uploaded its training above
            delta = self._adversary_delta(a, w, seen)
            if delta is not None:
                await self._put(a, w, self._sign(a, delta, w, n_pages, steps))

    def _adversary_delta(self, a: sim.Actor, w: int, seen):
        """Its upload of ``w`` from ``seen`` (honest deltas it could read); None: no upload."""
        hp, k = self.hp, a.kind
        if k == "replay" and a.history and w not in a.history:
            return sim.delta_of_blob(a.history[min(a.history)], hp, self.v.shapes)
        if k == "zero":
            shapes = self.v.shapes
            return sim.recompress({n: torch.zeros(s) for n, s in shapes.items()}, hp)
        if k == OLDER:
            if self.older_seen is None:
                return None
            src = self.older_seen[0][2 % len(self.older_seen[0])]
            return sim.recompress(sim.swap_indices_dense(src, 0.2, self.gen), hp)
        if seen is None:
            return None  # nothing revealed yet to copy, mix or size itself on
        honest, dense, norms = seen
        victim = {
            "backdating_copier": 0,
            "same_second_copier": 1,
            "evasive_copier": 2,
            COASTER: 2,
        }
        if k in victim:
            src = honest[victim[k] % len(honest)]
            if k != "evasive_copier":
                return src
            return sim.recompress(sim.swap_indices_dense(src, 0.2, self.gen), hp)
        if k == "aggregator":
            return sim.recompress({n: sum(d[n] for d in dense) / len(dense) for n in dense[0]}, hp)
        if k == "alie":
            mean, std = sim.mean_and_spread_dense(dense)
            return sim.recompress({n: mean[n] - std[n] for n in mean}, hp)
        if k == "random":
            return sim.random_delta(self.v.model, hp, statistics.median(norms), self.gen)
        return None

    async def poll(self, w: int) -> None:
        """One polling round of every validator's first-seen clock."""
        hotkeys = [a.key.ss58_address for a in self.actors]
        for v in self.vs:
            await poll_round(v.first_seen.window(w), v.directory, hotkeys, w, concurrency=16)

    async def window(self, w: int):
        """Window ``w``: uploads, polls, the cut-off and reveal, then every validator's
        ``run_window``, the leader's first. Returns the leader's report (``self.reports``:
        every validator's, in order)."""
        for v in self.vs:
            await v.directory.refresh()
        self.state.advance(self.clock.start(w))
        await self.poll(w)  # nothing is there yet
        await self.uploads(w)
        await self.poll(w)
        self.state.advance(self.clock.upload_cutoff(w))
        for v in self.vs:
            v.first_seen.window(w).cutoff_seen = time.time()
        await self.poll(w)
        for v in self.vs:
            ww = v.first_seen.window(w)
            ww.closed = True
            ww.done.set()
        self.state.advance(self.clock.reveal_start(w))
        await self.reveal()
        self.reports = [await v.run_window(w) for v in self.vs]
        self.windows_done += 1
        return self.reports[0]


def consensus_incentive(run: Run) -> tuple[dict[int, float], list[float]]:
    """Yuma's incentive per uid from every validator's last weights (``state.weights``: what
    it set on chain), with the chain's stakes, and each validator's trust (the devchain's
    ``yuma_epoch``, subtensor's epoch maths). With one validator, its normalised weights."""
    n = len(run.state.hotkeys)
    stake = np.array([run.state.stake.get(hk, 0.0) for hk in run.state.hotkeys])
    weights = np.zeros((n, n))
    for v in run.vs:
        for uid, x in v.state.weights.items():
            weights[v.uid, uid] = x
    out = yuma_epoch(weights, stake, np.zeros((n, n)), active=np.ones(n, bool), permits=stake > 0)
    return {u: float(out.incentive[u]) for u in range(n)}, [
        float(out.validator_trust[v.uid]) for v in run.vs
    ]


def second_half_shares(weights: dict[str, list[float]]) -> dict[str, float]:
    """Each class's mean share of the weights over the second half of the windows (windows
    where nobody has weight are skipped): pay over time, not the last window's snapshot."""
    n = len(next(iter(weights.values()), []))
    shares = {k: [] for k in weights}
    for i in range(n // 2, n):
        total = sum(w[i] for w in weights.values())
        if total > 0:
            for k, w in weights.items():
                shares[k].append(w[i] / total)
    return {k: statistics.mean(v) if v else 0.0 for k, v in shares.items()}


def _windows_to_zero(series: list[float]) -> int | None:
    """Windows until the class's weight reached 0 and stayed there (None: not by the end)."""
    for i in range(len(series)):
        if all(x <= 0 for x in series[i:]):
            return i
    return None


async def simulate(
    hp,
    ds,
    tmp,
    seed: int,
    windows: int,
    honest: int,
    classes: list[str],
    overrides=None,
    mix_cosine: float = LAZY_MIX_COSINE,
    first_window: int | None = None,
    leaked_seal: bool = False,
    inflate: float = INFLATE,
    carry_steps: int = -1,
    validators: int = 1,
    trace: bool = False,
) -> dict:
    """One run of ``windows`` windows from ``first_window`` (default 10 + 1000 x seed).

    The per-class figures are the leader's (validator 0); ``consensus`` gives what Yuma pays
    from every validator's weights (the same shares with one validator). ``trace``: also
    return the leader's decisions and values of every window (``window_trace``), which
    scripts/replay_scores.py folds again under the score rules of the code it runs on."""
    run = Run(
        hp,
        ds,
        tmp,
        seed,
        honest,
        classes,
        overrides,
        mix_cosine,
        leaked_seal,
        inflate,
        carry_steps,
        validators,
    )
    kinds = {a.uid: a.kind for a in run.actors}
    actors = {a.uid: a for a in run.actors}
    per_class: dict[str, dict] = {
        k: {
            "weights": [],
            "ever_peer": False,
            "credited": 0,
            "measured": 0,
            "boosted": 0,
            "rejected": 0,
            "z": [],
            "incentive": [],  # Yuma's, from every validator's weights
            "credited_by": [0] * (validators + 1),  # uploads credited by exactly j validators
        }
        for k in sorted(set(kinds.values()))
    }
    incentive: dict[int, float] = {}  # Yuma's, per uid, after the last window
    trust: list[float] = []
    honest_uploads = false_rejections = unattributed = 0
    first_credit: dict[int, int] = {}
    reasons: dict[str, int] = {}
    windows_trace: list[dict] = []
    steps: list[dict] = []  # the leader's check of each window's outer step (step_check.py)
    t0 = time.perf_counter()
    w0 = 10 + seed * 1000 if first_window is None else first_window
    for i in range(windows):
        w = w0 + i
        r = await run.window(w)
        if trace:
            windows_trace.append(window_trace(r))
        if r.step is not None:
            steps.append({"window": w, **r.step.record()})
        for uid, kind in kinds.items():
            c = per_class[kind]
            d = r.decisions.get(uid)
            if kind == "replay" and w == min(actors[uid].history):
                continue  # the upload it replays later: honestly trained, not an attack window
            if kind == COASTER and i < COAST_AFTER:
                continue  # it trains honestly until then: not an attack window
            if kind == "honest":
                honest_uploads += 1
                if uid in r.rejected:
                    false_rejections += 1
                    reasons[str(r.rejected[uid])] = reasons.get(str(r.rejected[uid]), 0) + 1
            if kind == "honest" and d is not None and d.verdict == "unattributed":
                unattributed += 1  # left without credit in a near-duplicate cluster
            if d is not None and d.verdict != "not_evaluated":
                c["measured"] += 1
                c["z"].append(d.fit_z)
                c["credited"] += d.credited
                c["boosted"] += d.boosted
                if d.credited:
                    first_credit.setdefault(uid, i)
            c["rejected"] += uid in r.rejected
            c["ever_peer"] |= any(u == uid for u, _ in r.peers)
            if d is not None and d.verdict != "not_evaluated":
                c["credited_by"][sum(_credited(x, uid) for x in run.reports)] += 1
        incentive, trust = consensus_incentive(run)
        for kind, c in per_class.items():
            c["weights"].append(
                sum(run.v.state.weights.get(u, 0.0) for u, k in kinds.items() if k == kind)
            )
            c["incentive"].append(sum(incentive[u] for u, k in kinds.items() if k == kind))
    honest_uids = [u for u, k in kinds.items() if k == "honest"]
    pay = pay_figures(
        {k: c["weights"] for k, c in per_class.items()},
        run.v.state.weights,
        kinds,
        "windows_to_weight_zero",
    )
    return {
        "seed": seed,
        "windows": windows,
        "honest_uploads": honest_uploads,
        "honest_false_rejections": false_rejections,
        "honest_rejection_reasons": reasons,
        "honest_unattributed": unattributed,
        "honest_windows_to_first_credit": [first_credit.get(u) for u in honest_uids],
        "min_honest_share_of_equal": pay["min_honest_share_of_equal"],
        "min_honest_share_of_full_work_equal": pay["min_honest_share_of_full_work_equal"],
        "honest_shares_of_equal": pay["honest_shares_of_equal"],  # uid order
        "adversary_incentive_share": pay["adversary_incentive_share"],
        "classes": {
            k: {
                **pay["classes"][k],
                "ever_peer": c["ever_peer"],
                "credited_of_measured": [c["credited"], c["measured"]],
                "boosted_of_measured": [c["boosted"], c["measured"]],
                "rejected_windows": c["rejected"],
                "fit_z": c["z"],
            }
            for k, c in sorted(per_class.items())
        },
        "heldout_loss": fixed_heldout_loss(run.v.model, ds, 8),
        "outer_steps": steps,
        "steps_withheld": sum(not s["applied"] for s in steps),
        "train_seconds": round(run.train_seconds, 1),
        "train_seconds_per_upload": run.full_seconds / max(1, run.trainings),
        "eval_seconds_per_upload": run.v.state.eval_seconds,
        "seconds": round(time.perf_counter() - t0, 1),
        **({"mixer_copied_share": run.mix_shares} if run.mix_shares else {}),
        "consensus": _consensus_figures(per_class, kinds, incentive, trust),
        **({"trace": run_trace(run, kinds, windows_trace)} if trace else {}),
    }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def window_trace(report) -> dict:
    """What the score stage saw in one window (the leader's report): each judged uid's
    [verdict, rejection code or None, gain, work, pay, fit z, evidence Z], the codes of the
    uploads rejected before the judge, the uids whose upload was missing, and the values."""
    decided = {
        str(u): [
            d.verdict,
            d.rejection.code.value if d.rejection is not None else None,
            _finite(d.gain),
            d.work,
            d.pay,
            _finite(d.fit_z),
            _finite(d.evidence_z),
        ]
        for u, d in sorted(report.decisions.items())
    }
    before = {str(u): r.code.value for u, r in sorted(report.rejected.items()) if u not in decided}
    return {
        "window": report.window,
        "decisions": decided,
        "rejected": before,
        "missing": sorted(report.missing),
        "values": {str(u): v for u, v in sorted(report.values.items())},
    }


def run_trace(run: Run, kinds: dict[int, str], windows: list[dict]) -> dict:
    """A run's trace: the settings the score stage used, each uid's class, every window."""
    cfg = run.v.cfg
    return {
        "judge_alpha": cfg.judge_alpha,
        "pay_span": run.v.judge_rules.pay_span,
        "score_alpha": cfg.score_alpha,
        "rate_memory": cfg.score_rate_memory,
        "invalid_penalty": cfg.score_invalid_penalty,
        "missing_penalty": cfg.score_missing_penalty,
        "kinds": {str(u): k for u, k in sorted(kinds.items())},
        "windows": windows,
    }


def _credited(report, uid: int) -> bool:
    d = report.decisions.get(uid)
    return d is not None and d.credited


def _consensus_figures(per_class: dict, kinds: dict[int, str], incentive, trust) -> dict:
    """The run's figures under Yuma's incentive (``consensus_incentive``) at its last window."""
    pay = pay_figures(
        {k: c["incentive"] for k, c in per_class.items()},
        incentive,
        kinds,
        "windows_to_incentive_zero",
    )
    for k, figures in pay["classes"].items():
        figures["credited_by"] = per_class[k]["credited_by"]
    return {"validators": len(trust), "validator_trust": trust, **pay}


def pay_figures(
    series: dict[str, list[float]], last: Mapping[int, float], kinds: dict[int, str], zero: str
) -> dict:
    """What a run paid: ``series`` is each class's pay per window (weights or incentive) and
    ``last`` the last window's pay per uid. Shares at the end, over the second half, the
    lowest honest miner's share of its equal share (1 / honest miners; and 1 / the uids that
    do a full window's work, ``FULL_WORK``), and per class the windows until its pay reached
    0 for good (key ``zero``; the coasting copier's count from its first copy)."""
    final = {k: x[-1] for k, x in series.items()}
    total = sum(final.values()) or 1.0
    honest = [last.get(u, 0.0) / total for u, k in kinds.items() if k == "honest"]
    equal_among = sum(k in FULL_WORK for k in kinds.values())
    later = second_half_shares(series)
    return {
        "min_honest_share_of_equal": min(honest) * len(honest) if honest else None,
        "min_honest_share_of_full_work_equal": min(honest) * equal_among if honest else None,
        "honest_shares_of_equal": [x * len(honest) for x in honest],
        "adversary_incentive_share": sum(v for k, v in final.items() if k in ADVERSARIES) / total,
        "classes": {
            k: {
                "incentive_share": final[k] / total,
                "incentive_share_second_half": later[k],
                zero: _windows_to_zero(x[COAST_AFTER:] if k == COASTER else x),
            }
            for k, x in sorted(series.items())
        },
    }


def _mean_sd(xs: list[float]) -> list[float] | None:
    return [statistics.mean(xs), statistics.pstdev(xs)] if xs else None


def null_fit_z(runs: list[dict], z_proof: float) -> dict | None:
    """The per-window fit z of the adversaries' measured uploads (none trained on its own
    pages): the judge's test assumes N(0, 1), so ``above_z_proof`` should be near alpha."""
    zs = [z for r in runs for k in ADVERSARIES for z in r["classes"].get(k, {}).get("fit_z", [])]
    if not zs:
        return None
    return {
        "uploads": len(zs),
        "mean": statistics.mean(zs),
        "sd": statistics.pstdev(zs),
        "above_z_proof": sum(z > z_proof for z in zs) / len(zs),
    }


def lazy_paid_less(run: dict) -> bool | None:
    """Whether the run's lazy miner (a quarter of the steps) earned less than the honest ones:
    at the end no more than the lowest honest miner, and over the second half of the windows
    less than an average honest miner (None: no lazy miner ran). Until 2026-12-06 the target
    compared only the mean final share over the runs with the honest mean, which passed while
    a lazy miner out-earned every honest one over a run's second half."""
    classes = run["classes"]
    if "lazy" not in classes or not run["honest_shares_of_equal"]:
        return None
    n = len(run["honest_shares_of_equal"])
    lowest = min(run["honest_shares_of_equal"]) / n
    later = classes["honest"]["incentive_share_second_half"] / n
    lazy = classes["lazy"]
    return lazy["incentive_share"] <= lowest and lazy["incentive_share_second_half"] < later


def summarise(runs: list[dict], clean: list[dict], z_proof: float) -> dict:
    pay = summarise_pay(runs, "windows_to_weight_zero")
    out = {
        "honest_uploads": sum(r["honest_uploads"] for r in runs),
        "honest_false_rejections": sum(r["honest_false_rejections"] for r in runs),
        "honest_unattributed": sum(r["honest_unattributed"] for r in runs),
        **{k: v for k, v in pay.items() if k != "targets"},
        "heldout_loss_with_adversaries": statistics.mean(r["heldout_loss"] for r in runs),
        "heldout_loss_without_adversaries": (
            statistics.mean(r["heldout_loss"] for r in clean) if clean else None
        ),
    }
    classes = sorted(out["classes"])
    for k in classes:
        rs = [r["classes"][k] for r in runs if k in r["classes"]]
        credited = [sum(x["credited_of_measured"][i] for x in rs) for i in (0, 1)]
        boosted = sum(x.get("boosted_of_measured", [0])[0] for x in rs)
        out["classes"][k] |= {
            "ever_peer": any(x["ever_peer"] for x in rs),
            "credited_of_measured": credited,
            "boosted_of_measured": [boosted, credited[1]],
            "fit_z_mean_sd": _mean_sd([z for x in rs for z in x["fit_z"]]),
        }
    out["null_fit_z"] = null_fit_z(runs, z_proof)
    checked = [s for r in runs for s in r.get("outer_steps", [])]
    out["outer_steps"] = {
        "checked": len(checked),
        "withheld": sum(not s["applied"] for s in checked),
        "gain_mean_sd": _mean_sd([s["gain"] for s in checked]),
        "lowest_z": min((s["z"] for s in checked), default=None),
    }
    wrong = [out["classes"][k]["credited_of_measured"] for k in ADVERSARIES if k in classes]
    out["false_credit_rate"] = sum(c for c, _ in wrong) / max(1, sum(m for _, m in wrong))
    out["eval_cost_share"] = statistics.mean(
        r["eval_seconds_per_upload"] / r["train_seconds_per_upload"] for r in runs
    )
    lazy = {r["seed"]: lazy_paid_less(r) for r in runs}
    out["lazy_above_honest_seeds"] = [seed for seed, ok in lazy.items() if ok is False]
    out["targets"] = {
        "zero_honest_false_rejections": out["honest_false_rejections"] == 0,
        **pay["targets"],
        "lazy_paid_less_than_honest": not out["lazy_above_honest_seeds"],
        # wall-clock validator seconds over miner training seconds per upload; the tiny and
        # small presets train too few sequences per window to meet it (docs/scoring.md, 4)
        "eval_cost_at_most_10pct": out["eval_cost_share"] <= 0.10,
    }
    out["consensus"] = summarise_consensus([r["consensus"] for r in runs])
    return out


def summarise_consensus(runs: list[dict]) -> dict:
    """The runs' consensus figures (Yuma's incentive over every validator's weights), with
    the incentive targets measured on them."""
    out = {
        "validators": runs[0]["validators"],
        "validator_trust_min": min(t for r in runs for t in r["validator_trust"]),
        **summarise_pay(runs, "windows_to_incentive_zero"),
    }
    for k, figures in out["classes"].items():
        rs = [r["classes"][k]["credited_by"] for r in runs if k in r["classes"]]
        figures["credited_by"] = [sum(x[j] for x in rs) for j in range(len(rs[0]))]
    return out


def summarise_pay(runs: list[dict], zero: str) -> dict:
    """The runs' ``pay_figures`` (per run, under the key ``zero`` for the windows until a
    class's pay reached 0): worst and mean adversary share, the lowest honest miner, per class
    mean, max and second-half shares, and the pay targets of issue 15."""
    classes = sorted({k for r in runs for k in r["classes"]})
    out = {
        "adversary_incentive_share": max(r["adversary_incentive_share"] for r in runs),
        "adversary_incentive_share_mean": statistics.mean(
            r["adversary_incentive_share"] for r in runs
        ),
        "min_honest_share_of_equal": min(r["min_honest_share_of_equal"] for r in runs),
        "min_honest_share_of_full_work_equal": min(
            r["min_honest_share_of_full_work_equal"] for r in runs
        ),
        "classes": {},
    }
    for k in classes:
        rs = [r["classes"][k] for r in runs if k in r["classes"]]
        zeros = [x[zero] for x in rs]
        out["classes"][k] = {
            "incentive_share_mean": statistics.mean(x["incentive_share"] for x in rs),
            "incentive_share_max": max(x["incentive_share"] for x in rs),
            "incentive_share_second_half_mean": statistics.mean(
                x["incentive_share_second_half"] for x in rs
            ),
            f"{zero}_max": None if None in zeros else max(zeros),
        }
    adv_zero = [out["classes"][k][f"{zero}_max"] for k in ADVERSARIES if k in classes]
    name = zero.removeprefix("windows_to_")
    out["targets"] = {
        "honest_at_least_half_equal_share": out["min_honest_share_of_equal"] >= 0.5,
        "adversaries_at_most_2pct": out["adversary_incentive_share"] <= 0.02,
        f"adversaries_{name}_within_8": all(z is not None and z <= 8 for z in adv_zero),
    }
    return out


def seq_counts(text: str) -> tuple[int, int]:
    """``OWN[,CONTROL]`` sequence counts (one number: both), each at least 2."""
    own, _, control = text.partition(",")
    try:
        counts = int(own), int(control or own)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected OWN[,CONTROL] integers, got {text!r}") from None
    if min(counts) < 2:
        raise argparse.ArgumentTypeError(f"sequence counts must be at least 2, got {text!r}")
    return counts


def hparam_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for ``HParams.replace``: VALUE read as JSON (a number, true/false, a quoted
    string), else taken as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def overridden(hp: HParams, pairs: list[tuple[str, object]], parser) -> HParams:
    """``hp`` with the ``--set`` overrides; a bad key or value is a usage error, not a trace."""
    try:
        return hp.replace(**dict(pairs)) if pairs else hp
    except HParamsError as e:
        parser.error(f"--set: {e}")


def run_start(hp: HParams, seed: int) -> HParams:
    """The preset with the run seed added to its initial weights' seed and its page draws'
    seed, so two runs differ in their model and data as two subnets would (seed 0 keeps the
    preset's). Without it every run built the same initial model and, at one first window,
    trained the same page draws: only the validator's sample and the adversaries' randomness
    told runs apart (``--same-start``)."""
    return hp.replace(
        **{"model.init_seed": hp.model.init_seed + seed, "data.seed": hp.data.seed + seed}
    )


def add_start_flag(p: argparse.ArgumentParser) -> None:
    """``--same-start``: ``run_start`` off (the benchmarks that train runs share it)."""
    p.add_argument(
        "--same-start",
        action="store_true",
        help="every run builds the preset's initial model and page draws (model.init_seed, "
        "data.seed), as runs recorded before 2026-12-06 did; default: the run seed sets both "
        "(run_start)",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="small preset, 1 seed, 6 windows")
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--windows", type=int, default=24)
    p.add_argument("--honest", type=int, default=3)
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES))
    p.add_argument(
        "--clean-seeds", type=int, default=-1, help="seeds with an honest-only run (-1: all)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--alpha", type=float, default=None, help="--judge.alpha of the validator")
    p.add_argument(
        "--eval-boost", type=int, default=None, help="--eval.boost of the validator (1: off)"
    )
    p.add_argument(
        "--eval-seqs",
        type=seq_counts,
        default=None,
        help="OWN[,CONTROL]: --eval.own-seqs and --eval.control-seqs of the validator (one "
        "number: both; default: theirs)",
    )
    p.add_argument(
        "--eval-lr-scale", type=float, default=None, help="--eval.lr-scale of the validator"
    )
    p.add_argument(
        "--control-pool",
        type=int,
        default=None,
        help="--eval.control-pool of the validator (1: one control sample shared by uploads)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        type=hparam_override,
        metavar="KEY=VALUE",
        help="an hparams override of every preset, e.g. data.seqs_per_page=2 (repeatable)",
    )
    p.add_argument(
        "--lazy-mix-cosine",
        type=float,
        default=LAZY_MIX_COSINE,
        help="the lazy_mixer and full_claim_mixer classes copy as much of the honest mean as "
        "keeps their cosine to the honest sum under this",
    )
    p.add_argument(
        "--first-window",
        type=int,
        default=None,
        help="the first window of every run (default 10 + 1000 x seed; the inner lr schedule "
        "depends on the window, so seeds 2 and up start at its tail)",
    )
    add_start_flag(p)
    p.add_argument(
        "--trace",
        action="store_true",
        help="each run also carries every window's decisions and values ('trace'), to replay "
        "under other score rules with scripts/replay_scores.py",
    )
    p.add_argument(
        "--leaked-seal",
        action="store_true",
        help="adversaries read the current window's honest uploads, as if every seal key leaked "
        "before the cut-off (default: only the previous window's, revealed ones)",
    )
    p.add_argument(
        "--inflate",
        type=float,
        default=INFLATE,
        help="the lazy_inflated and amplifier classes multiply their values by this",
    )
    p.add_argument(
        "--carry-steps",
        type=int,
        default=-1,
        help="K >= 0: the training miners carry on from their live weights and the previous "
        "window's aggregate arrives after K of their steps, as on a live subnet "
        "(training/overlap.py); -1 (default): every window starts from the global model",
    )
    p.add_argument(
        "--validators",
        type=int,
        default=1,
        help="validators with about equal stake, each with its own secret sample; the first "
        "leads and the others follow its aggregate. Per-class figures are the leader's; "
        "'consensus' gives Yuma's incentive over all of their weights",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        default=sim.CORPUS,
        help="UTF-8 text the miners train on (default: shared/data/tinyshakespeare.txt), or "
        f"{sim.STDLIB!r}: the Python standard library's sources, as a local subnet trains on "
        "where shared/data is absent",
    )
    args = p.parse_args()
    if str(args.corpus) != sim.STDLIB and not args.corpus.is_file():
        p.error(f"--corpus {args.corpus}: no such file")
    if args.validators < 1:
        p.error(f"--validators {args.validators}: must be >= 1")
    if args.first_window is not None and args.first_window < 0:
        p.error(f"--first-window {args.first_window}: must be >= 0")
    if args.quick:
        args.presets, args.seeds, args.windows, args.clean_seeds = "small", 1, 6, 0
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    classes = [c for c in args.classes.split(",") if c]
    over = {} if args.alpha is None else {"judge_alpha": args.alpha}
    alpha = ValidatorConfig().judge_alpha if args.alpha is None else args.alpha
    z_proof = JudgeRules(alpha=alpha).z_proof
    if args.eval_lr_scale is not None:
        over |= {"eval_lr_scale": args.eval_lr_scale}
    if args.eval_boost is not None:
        over |= {"eval_boost": args.eval_boost}
    if args.control_pool is not None:
        if args.control_pool < 1:
            p.error(f"--control-pool {args.control_pool}: must be at least 1")
        over |= {"eval_control_pool": args.control_pool}
    if args.eval_seqs is not None:
        own, control = args.eval_seqs
        over |= {"eval_own_seqs": own, "eval_control_seqs": control}
    result: dict = {
        "command": " ".join(sys.argv),
        "seeds": args.seeds,
        "windows": args.windows,
        "honest": args.honest,
        "overrides": dict(args.set),
        "corpus": args.corpus.name,
        "lazy_mix_cosine": args.lazy_mix_cosine,
        "first_window": args.first_window,
        "leaked_seal": args.leaked_seal,
        "inflate": args.inflate,
        "carry_steps": args.carry_steps,
        "validators": args.validators,
        "same_start": args.same_start,
    }
    names = [n for n in args.presets.split(",") if n]
    if not names or set(names) - {"tiny", "small"}:
        p.error(f"--presets {args.presets!r}: expected a comma list of tiny and small")
    presets = {name: overridden(preset(name), args.set, p) for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = sim.build_dataset(Path(tmp) / "dataset", corpus=args.corpus)
        except UnicodeDecodeError as e:
            p.error(f"--corpus {args.corpus}: not UTF-8 text ({e.reason} at byte {e.start})")
        for name, base in presets.items():
            runs, clean = [], []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                hp = base if args.same_start else run_start(base, seed)
                ds = sim.open_dataset(folder, hp)
                runs.append(
                    asyncio.run(
                        simulate(
                            hp,
                            ds,
                            Path(tmp),
                            seed,
                            args.windows,
                            args.honest,
                            classes,
                            over,
                            args.lazy_mix_cosine,
                            args.first_window,
                            args.leaked_seal,
                            args.inflate,
                            args.carry_steps,
                            args.validators,
                            args.trace,
                        )
                    )
                )
                if args.clean_seeds < 0 or seed - args.first_seed < args.clean_seeds:
                    clean.append(
                        asyncio.run(
                            simulate(
                                hp,
                                ds,
                                Path(tmp) / "c",
                                seed,
                                args.windows,
                                args.honest,
                                [],
                                over,
                                first_window=args.first_window,
                                carry_steps=args.carry_steps,
                                validators=args.validators,
                            )
                        )
                    )
            result[name] = {**summarise(runs, clean, z_proof), "runs": runs}
    print(json.dumps(result, indent=None if args.json else 2, default=float))


if __name__ == "__main__":
    main()
