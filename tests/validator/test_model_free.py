"""Each model-free defence on a small fixed case: attribution by the validator's own clock,
partial copies, mixes, honest uploads left alone, replays over the whole run, rotation."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest
import torch

from template.hparams import load_hparams
from template.training.compression import CompressedDelta, CompressedTensor, Compressor
from template.training.model import build_model
from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.training.wire import Upload
from template.validator import copies
from template.validator.cache import KEEP_WINDOWS, WindowCache
from template.validator.copies import (
    CopyRules,
    aggregate_sketch,
    find_clusters,
    find_mixes,
    make_print,
    mix_scores,
    window_salt,
)
from template.validator.gather import Candidate
from template.validator.outcomes import MISSING, RejectCode, Rejection, rejection_of_wire_error
from template.validator.replay import ReplayMemory, content_digest, index_digest, replay_windows
from template.validator.sampling import (
    boost_room,
    boosts_within,
    choose_for_evaluation,
    evaluation_budget,
    rotation_bound,
)
from template.validator.screen import screen_window
from template.validator.sketch import (
    flatten,
    minhash,
    minhash_agreement,
    mix64,
    shared_overlap_and_cosine,
    tensor_offsets,
)
from template.validator.verify import free_riders, page_claim_rejection
from template.validator.watch import Sighting, WindowWatch

from .harness import Uploader, small_hparams, train_delta

HP = small_hparams()
RULES = CopyRules()


def as_upload(delta: CompressedDelta, uid: int, pages=(1,), window: int = 3) -> Upload:
    return Upload(window, uid, f"hk{uid}", 0, "", 0, delta, tuple(pages), 1)


@pytest.fixture(scope="module")
def honest(tiny_dataset):
    """Real honest uploads of 4 miners over 3 windows of the small test preset (the model
    takes each window's mean, like the network), plus the dataset layout."""
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    torch.manual_seed(0)
    model = build_model(HP.model)
    miners = [Uploader(f"m{i}", "honest", None, uid=i + 1) for i in range(4)]
    windows = []
    for w in range(3):
        ups = {}
        for m in miners:
            delta = train_delta(m, model, HP, ds, w, m.uid)
            ups[m.uid] = as_upload(delta, m.uid, ds.layout.pages(w, m.uid, m.pages), w)
        with torch.no_grad():
            for name, p in model.named_parameters():
                mean = sum(u.delta.tensors[name].to_dense() for u in ups.values()) / len(ups)
                p.sub_(mean)
        windows.append(ups)
    return ds.layout, windows


def held(windows: dict[int, dict[int, Upload]]) -> WindowCache:
    """A validator's window cache holding ``windows`` (window -> uid -> upload), released as
    the loop releases them: a held upload is "decoded again" from ``windows``."""
    cache = WindowCache("test", RULES, lambda c, w: windows[w][c.uid])
    for w, ups in sorted(windows.items()):
        cache.keep(w, [Candidate(u, up.hotkey, upload=up) for u, up in ups.items()])
        cache.release(w, peers=[])
    return cache


def screen(
    window,
    uploads,
    layout,
    sightings=None,
    last=(),
    replays=None,
    trusted=(),
    earlier=None,
    rules=RULES,
    proven=(),
):
    salt = window_salt("test", window)
    return screen_window(
        window,
        uploads,
        layout=layout,
        replays=replays or ReplayMemory(1),
        rules=rules,
        salt=salt,
        sightings=sightings,
        aggregate=aggregate_sketch(last, RULES, salt),
        freerider_min_norm=0.05,
        trusted=trusted,
        earlier=held(earlier or {}).earlier(window),
        proven=proven,
    )


def swap_share(up: Upload, share: float, seed: int = 0) -> CompressedDelta:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in up.delta.tensors.items():
        idx = t.indices.clone()
        k = int(share * idx.numel())
        free = torch.ones(t.numel, dtype=torch.bool)
        free[idx] = False
        pool = free.nonzero().view(-1)
        idx[torch.randperm(idx.numel(), generator=gen)[:k]] = pool[
            torch.randperm(pool.numel(), generator=gen)[:k]
        ]
        order = idx.argsort()
        out[name] = CompressedTensor(t.shape, idx[order], t.codes[order], t.codebook)
    return CompressedDelta(out)


def share_of(up: Upload, part: int, parts: int) -> CompressedDelta:
    """Every ``parts``-th value of ``up`` from the ``part``-th on: ``parts`` shares sum to it."""
    out = {}
    for name, t in up.delta.tensors.items():
        keep = torch.arange(part, t.indices.numel(), parts)
        out[name] = CompressedTensor(t.shape, t.indices[keep], t.codes[keep], t.codebook)
    return CompressedDelta(out)


def resign(up: Upload, uid: int, window: int, layout) -> Upload:
    """The same content presented as uid's own upload, claiming uid's own pages."""
    return as_upload(up.delta, uid, layout.pages(window, uid, len(up.pages)), window)


# --- outcomes ------------------------------------------------------------------------------
def test_rejection_is_a_code_and_one_line():
    r = Rejection(RejectCode.LATE, "not seen\nbefore the cut-off")
    assert str(r) == "late: not seen before the cut-off" and "\n" not in str(r)
    assert MISSING.missing and not r.missing and Rejection(RejectCode.MISSING) == MISSING
    assert rejection_of_wire_error("field_mismatch", "window is 3").code is RejectCode.WRONG_WINDOW
    assert rejection_of_wire_error("bad_signature", "x").code is RejectCode.BAD_SIGNATURE
    assert rejection_of_wire_error("truncated", "x").code is RejectCode.MALFORMED


# --- attribution by the validator's clock ----------------------------------------------------
def test_watch_records_first_sight_and_resets_on_changed_content():
    ww = WindowWatch()
    ww.observe("a", None, sent=1.0, received=1.1)
    ww.observe("a", "e1", sent=2.0, received=2.1)
    ww.observe("a", "e1", sent=3.0, received=3.1)
    assert ww.sightings["a"] == Sighting("e1", 2.1, 1.0)
    ww.observe("a", "e2", sent=4.0, received=4.1)  # overwritten: a new sighting
    assert ww.sightings["a"] == Sighting("e2", 4.1, 3.0)


def test_backdated_copier_cannot_make_the_original_lose(honest):
    layout, windows = honest
    ups = dict(windows[2])
    ups[9] = resign(ups[1], 9, 2, layout)  # exact copy of uid 1 by uid 9
    # the copier's storage may report any LastModified: only the validator's sightings count.
    seen = {1: Sighting("e1", 10.0, 9.0), 9: Sighting("e9", 11.0, 10.5)}
    for u in (2, 3, 4):
        seen[u] = Sighting(f"e{u}", 10.0, 9.0)
    res = screen(2, ups, layout, seen)
    assert 1 not in res.rejected
    assert res.rejected[9].code is RejectCode.DUPLICATE and "uid 1" in str(res.rejected[9])
    (cluster,) = res.clusters
    assert cluster.uids == (1, 9) and cluster.provably_later == {9: 1}


def test_same_second_copy_rejects_no_one_and_goes_to_the_judge(honest):
    layout, windows = honest
    ups = dict(windows[2])
    ups[9] = resign(ups[1], 9, 2, layout)
    seen = {u: Sighting(f"e{u}", 10.0, 9.0) for u in ups}  # same poll round: order unknown
    res = screen(2, ups, layout, seen)
    assert 1 not in res.rejected and 9 not in res.rejected
    (cluster,) = res.clusters
    assert set(cluster.undecided) == {1, 9} and cluster.links[0].identical
    # without any sighting (window not watched) the same holds
    res = screen(2, ups, layout)
    assert not res.rejected and set(res.clusters[0].undecided) == {1, 9}


def test_partial_copy_with_20_percent_swapped_is_linked(honest):
    layout, windows = honest
    for w in (1, 2):
        ups = dict(windows[w])
        ups[9] = resign(as_upload(swap_share(ups[2], 0.2, seed=w), 2), 9, w, layout)
        res = screen(w, ups, layout)
        linked = {frozenset(c.uids) for c in res.clusters}
        assert frozenset({2, 9}) in linked, res.clusters
        assert not res.rejected  # no sighting: undecided, the judge settles it


def test_recompressed_mean_of_others_is_a_mix(honest):
    layout, windows = honest
    for w in (1, 2):
        ups = dict(windows[w])
        dense = [u.delta.to_dense() for u in ups.values()]
        mean = {k: sum(d[k] for d in dense) / len(dense) for k in dense[0]}
        ups[9] = as_upload(Compressor(HP.compression).compress(mean), 9, layout.pages(w, 9, 2), w)
        res = screen(w, ups, layout)
        assert res.rejected[9].code is RejectCode.MIX_OF_OTHERS, res.rejected
        assert set(res.rejected) == {9}, res.rejected


def test_a_swarm_of_mixers_flags_every_mixer_and_no_honest_upload(honest):
    layout, windows = honest
    ups = dict(windows[2])
    dense = [u.delta.to_dense() for u in ups.values()]
    mean = {k: sum(d[k] for d in dense) / len(dense) for k in dense[0]}
    mix = Compressor(HP.compression).compress(mean)
    for uid in (9, 10, 11):
        ups[uid] = as_upload(mix, uid, layout.pages(2, uid, 2), 2)
    res = screen(2, ups, layout)
    assert set(res.rejected) == {9, 10, 11}, res.rejected
    assert all(r.code is RejectCode.MIX_OF_OTHERS for r in res.rejected.values())


def test_an_upload_close_to_one_other_is_a_pair_for_the_judge_not_a_mix(honest):
    """A miner that trains on an honest miner's pages (or sends a partial copy too far moved
    to be linked) makes that miner's upload close to the others' sum. The sketches cannot say
    which of the two leans on the other: neither is rejected, the judge settles the pair by
    page fit. A mix of many stays a mix."""
    layout, windows = honest
    ups = dict(windows[2])
    ups[9] = resign(as_upload(swap_share(ups[2], 0.4, seed=2), 2), 9, 2, layout)
    rules = dataclasses.replace(RULES, mix_cosine=0.4)  # the pair's cosines: ~0.47 and ~0.37
    plain = screen(2, ups, layout)
    assert not plain.clusters and not plain.rejected  # not linked as near-duplicates
    scores = mix_scores(list(plain.prints.values()), plain.clusters, None)
    assert max(scores, key=lambda u: scores[u].loo_cosine) == 2  # the honest one looks worst
    assert scores[2].loo_cosine >= rules.mix_cosine
    mixes = find_mixes(list(plain.prints.values()), plain.clusters, rules)
    assert mixes.rejected == {} and mixes.pairs == [(2, 9)]
    res = screen(2, ups, layout, rules=rules)
    assert not res.rejected
    (pair,) = res.clusters
    assert set(pair.undecided) == {2, 9} and not pair.links and not pair.provably_later
    dense = [u.delta.to_dense() for u in windows[2].values()]
    mean = {k: sum(d[k] for d in dense) / len(dense) for k in dense[0]}
    ups[10] = as_upload(Compressor(HP.compression).compress(mean), 10, layout.pages(2, 10, 2), 2)
    res = screen(2, ups, layout, rules=rules)
    assert res.rejected[10].code is RejectCode.MIX_OF_OTHERS and set(res.rejected) == {10}


def test_a_proven_upload_close_to_unproven_shares_of_it_is_a_pair_not_a_mix(honest):
    """Shadows that each train a share of a proven miner's public pages make its upload close
    to their sum but to none of them: with its proof known, the judge settles it by page fit
    instead of the mix check rejecting it. A proven upload that mixes proven ones is a mix."""
    layout, windows = honest
    ups = dict(windows[2])
    shadows = (9, 10, 11, 12)
    for i, uid in enumerate(shadows):  # a third of each share's indices elsewhere: no copy
        part = as_upload(share_of(ups[2], i, len(shadows)), uid, layout.pages(2, uid, 2), 2)
        ups[uid] = dataclasses.replace(part, delta=swap_share(part, 0.35, seed=uid))
    rules = dataclasses.replace(RULES, mix_cosine=0.4)  # the victim's cosine: ~0.5
    plain = screen(2, ups, layout, rules=rules)
    assert plain.rejected[2].code is RejectCode.MIX_OF_OTHERS  # without proof: the victim
    res = screen(2, ups, layout, rules=rules, proven=(1, 2, 3, 4))
    assert 2 not in res.rejected, res.rejected
    (pair,) = [c for c in res.clusters if 2 in c.uids]
    assert set(pair.undecided) - {2} and set(pair.undecided) - {2} <= set(shadows)
    mixed = dict(windows[2])
    dense = [mixed[u].delta.to_dense() for u in (2, 3, 4)]
    mean = {k: sum(d[k] for d in dense) / len(dense) for k in dense[0]}
    mixed[1] = as_upload(Compressor(HP.compression).compress(mean), 1, layout.pages(2, 1, 2), 2)
    res = screen(2, mixed, layout, rules=rules, proven=(1, 2, 3, 4))
    assert res.rejected[1].code is RejectCode.MIX_OF_OTHERS and set(res.rejected) == {1}


def test_a_pair_joins_the_near_duplicate_cluster_of_its_member():
    seen = {1: Sighting("e1", 10.0, 9.0), 9: Sighting("e9", 11.0, 10.5)}
    link = copies.Link(1, 9, 1.0, 1.0, True)
    cluster = copies.Cluster((1, 9), (link,), {1: 10.0, 9: 11.0}, {9: 1})
    assert copies.join_pairs([cluster], [], seen) == [cluster]
    (joined,) = copies.join_pairs([cluster], [(4, 9)], seen)
    assert joined.uids == (1, 9, 4) and joined.links == (link,)
    assert joined.provably_later == {9: 1}  # a pair proves no order: 4 is never "later"
    assert [c.uids for c in copies.join_pairs([cluster], [(2, 3)], seen)] == [(1, 9), (2, 3)]


def test_copies_do_not_raise_the_mix_cosine_of_the_uploads_they_copy_from(honest):
    """A near-duplicate cluster counts once in the others' sum: copiers duplicating honest
    uploads cannot push the other honest uploads towards the mix threshold."""
    layout, windows = honest
    ups = dict(windows[2])
    plain = screen(2, ups, layout)
    for copier, victim in ((9, 1), (10, 2), (11, 2)):
        ups[copier] = dataclasses.replace(ups[victim], uid=copier, hotkey=f"hk{copier}")
    copied = screen(2, ups, layout)
    assert {frozenset(c.uids) for c in copied.clusters} == {
        frozenset({1, 9}),
        frozenset({2, 10, 11}),
    }
    before = mix_scores(list(plain.prints.values()), plain.clusters, None)
    after = mix_scores(list(copied.prints.values()), copied.clusters, None)
    for uid in (1, 2, 3, 4):  # the copied originals too: their own cluster is left out whole
        assert after[uid].loo_cosine == pytest.approx(before[uid].loo_cosine, abs=1e-9)


def test_copy_of_the_last_aggregate_is_a_mix(honest):
    layout, windows = honest
    last = list(windows[1].values())
    dense = [u.delta.to_dense() for u in last]
    agg = {k: sum(d[k] for d in dense) / len(dense) for k in dense[0]}
    ups = dict(windows[2])
    ups[9] = as_upload(Compressor(HP.compression).compress(agg), 9, layout.pages(2, 9, 2), 2)
    res = screen(2, ups, layout, last=last)
    assert res.rejected[9].code is RejectCode.MIX_OF_OTHERS
    assert set(res.rejected) == {9}


def test_honest_uploads_are_never_flagged(honest):
    layout, windows = honest
    for w, ups in enumerate(windows):
        last = list(windows[w - 1].values()) if w else ()
        res = screen(w, ups, layout, last=last)
        assert not res.rejected and not res.clusters, (w, res.rejected, res.clusters)


def test_flatten_is_the_upload_in_one_coordinate_space(honest):
    """flatten gives every tensor's indices at its name-order offset and exactly the values
    ``CompressedTensor.values`` dequantises (sketches and copy checks read these)."""
    _, windows = honest
    up = windows[0][1]
    flat, offsets = flatten(up), tensor_offsets(up.delta.shapes())
    pos = 0
    for name in sorted(up.delta.tensors):
        t = up.delta.tensors[name]
        n = t.indices.numel()
        assert flat.indices[pos : pos + n].tolist() == (t.indices + offsets[name]).tolist()
        assert flat.values[pos : pos + n].tolist() == t.values().tolist()
        pos += n
    assert pos == flat.nnz and (flat.indices[1:] > flat.indices[:-1]).all()
    assert flat.values.dtype.name == "float32" and flat.indices.dtype.name == "int64"


def test_minhash_agreement_tracks_overlap():
    a = torch.arange(0, 20000, 3)
    b = torch.cat([a[: int(0.8 * a.numel())], torch.arange(1, 20000, 7)[: int(0.2 * a.numel())]])
    sa = minhash(a.numpy(), 7)
    sb = minhash(torch.unique(b).numpy(), 7)
    jac = 0.8 / 1.2
    assert abs(minhash_agreement(sa, sb) - jac) < 0.15
    assert minhash_agreement(sa, sa) == 1.0


def test_minhash_is_each_bins_smallest_hash():
    """Bin = the hash's top bits; each bin holds its smallest hash, an empty one the maximum."""
    idx = np.unique(np.random.default_rng(0).integers(0, 10**9, 300))
    h = mix64(idx, 11)
    for bins in (2, 256, 1024):  # 300 hashes leave some of 1024 bins empty
        top = (h >> np.uint64(64 - bins.bit_length() + 1)).astype(np.int64)
        want = [min(h[top == b], default=np.iinfo(np.uint64).max) for b in range(bins)]
        assert minhash(idx, 11, bins).tolist() == [int(x) for x in want]
    assert (minhash(idx[:0], 11, 4) == np.iinfo(np.uint64).max).all()


def test_clusters_need_a_direct_link_for_priority():
    up = as_upload(Compressor(HP.compression).compress({"w": torch.randn(64, 64)}), 1)
    p1 = make_print(1, content_digest(up), up, RULES, 5)
    p2 = make_print(2, content_digest(up), up, RULES, 5)
    seen = {1: Sighting("a", 5.0, None), 2: Sighting("b", 5.0, None)}  # never seen absent
    (c,) = find_clusters([p1, p2], seen, RULES)
    assert c.provably_later == {}  # no proof of order without an absence observation


# --- verify, replay, rotation -------------------------------------------------------------------
def test_page_claims_and_free_riders(tiny_dataset):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    up = as_upload(Compressor(HP.compression).compress({"w": torch.randn(8, 8)}), 1)
    own = tuple(ds.layout.pages(5, 1, 3))
    assert page_claim_rejection(dataclasses.replace(up, pages=own), ds.layout, 5, 1) is None
    other = tuple(ds.layout.pages(5, 2, 3))
    bad = page_claim_rejection(dataclasses.replace(up, pages=other), ds.layout, 5, 1)
    assert bad.code is RejectCode.BAD_PAGES and "outside" in bad.detail
    assert page_claim_rejection(dataclasses.replace(up, pages=()), ds.layout, 5, 1).code is (
        RejectCode.BAD_PAGES
    )
    # the window's page budget: H steps' pages, no more
    assert page_claim_rejection(dataclasses.replace(up, pages=own), ds.layout, 5, 1, 3) is None
    over = page_claim_rejection(dataclasses.replace(up, pages=own), ds.layout, 5, 1, 2)
    assert over.code is RejectCode.BAD_PAGES and "budget is 2" in over.detail
    out = free_riders({1: 1.0, 2: 1.1, 3: 0.0, 4: 0.01, 5: float("nan"), 6: 0.9}, 0.05)
    assert set(out) == {3, 4, 5} and all(r.code is RejectCode.FREE_RIDER for r in out.values())


@pytest.mark.parametrize("preset", ["tiny", "150m", "8b"])
def test_replay_memory_spans_the_whole_run(preset):
    hp = load_hparams(preset)
    span = replay_windows(hp, configured=8)
    run = hp.train.total_steps // hp.train.inner_steps
    assert span > run > 8
    up = as_upload(Compressor(HP.compression).compress({"w": torch.randn(32, 32)}), 1)
    digests = (content_digest(up), index_digest(up))
    mem = ReplayMemory(span)
    mem.remember(0, 1, digests)
    for w in range(1, span, max(1, span // 50)):  # other uploads keep arriving
        mem.remember(w, 2, (f"other{w}",))
    last = span - 1
    assert mem.check(0, digests) is None  # same window: the copy check's business
    hit = mem.check(last, digests)
    assert hit is not None and hit.code is RejectCode.REPLAY and "window 0" in hit.detail
    mem.remember(span + 1, 3, ("x",))
    assert mem.check(span + 1, digests) is None  # past the run: forgotten


@pytest.mark.parametrize(("n", "budget"), [(10, 3), (7, 7), (25, 4), (256, 40)])
def test_rotation_evaluates_every_uid_within_its_bound(n, budget):
    bound = rotation_bound(n, budget)
    last: dict[int, int] = {}
    since = {u: 0 for u in range(n)}
    for w in range(3 * bound + 5):
        chosen = choose_for_evaluation(list(range(n)), last, budget, w)
        assert len(chosen) == min(n, budget)
        for u in range(n):
            since[u] = 0 if u in chosen else since[u] + 1
            assert since[u] < bound, (u, w, bound)
        for u in chosen:
            last[u] = w


def test_rotation_budget_yields_to_the_max_wait():
    assert evaluation_budget(0, 10.0, 1.0) == 10
    assert evaluation_budget(0, 10.0, 1.0, uploads=256, max_wait=4) == 64
    assert rotation_bound(256, evaluation_budget(0, 10.0, 1.0, uploads=256, max_wait=4)) == 4
    assert evaluation_budget(0, 0.0, None, uploads=256, max_wait=4) is None


def test_boosts_only_run_as_far_as_the_time_budget_pays():
    assert boost_room(0.0, 1.0, 5) is None and boost_room(10.0, None, 5) is None
    assert boost_room(10.0, 1.0, 6) == 4.0 and boost_room(10.0, 1.0, 12) == -2.0
    undecided = [7, 3, 9, 1]
    assert boosts_within(undecided, None, 2) == undecided  # no time limit
    assert boosts_within(undecided, 4.0, 1) == []  # --eval.boost 1: never
    assert boosts_within(undecided, 2.0, 2) == [7, 3]  # one more evaluation's time each
    assert boosts_within(undecided, 2.9, 3) == [7]  # two more each
    assert boosts_within(undecided, -2.0, 2) == []  # the max wait already overran


def _planner(**cfg):
    """A Validator whose evaluation plan is all that runs (rules, evidence and state real)."""
    from types import SimpleNamespace

    from template.validator.args import ValidatorConfig
    from template.validator.judge import Evidence, JudgeRules
    from template.validator.loop import Validator
    from template.validator.plan import plan_evaluation
    from template.validator.state import ValidatorState

    v = SimpleNamespace(
        cfg=ValidatorConfig(**cfg),
        judge_rules=JudgeRules(),
        evidence=Evidence(),
        state=ValidatorState(),
    )
    return v, lambda uids, w: plan_evaluation(uids, w, **Validator._plan_inputs(v))


def test_the_validator_plans_evaluations_within_its_budget_and_max_wait():
    uids = list(range(1, 13))
    v, plan = _planner(eval_time_budget=6.0, eval_max_wait=0, eval_boost=2)
    v.state.eval_seconds = 1.0
    v.state.last_evaluated = {u: u - 20 for u in uids}  # uid 1 waited longest, then 2, ...
    for uid, z in {1: 2.3, 2: 1.0, 3: 3.0, 4: 9.0, 5: -1.0, 6: 2.0}.items():
        v.evidence.s[uid], v.evidence.v[uid] = z, 1.0
    chosen, boosted = plan(uids, 1)
    assert chosen == [1, 2, 3, 4, 5, 6] and boosted == set()  # 6 s, 6 uploads: no time left
    v.cfg = dataclasses.replace(v.cfg, eval_time_budget=8.0)
    chosen, boosted = plan(uids, 1)
    assert chosen == list(range(1, 9)) and boosted == set()  # 2 more s: 2 more uploads
    v.cfg = dataclasses.replace(v.cfg, eval_max_uploads=4, eval_time_budget=6.0)
    chosen, boosted = plan(uids, 1)
    # 2 s left: the undecided nearest the bar (2.33) first; 4 (paid in full) is not undecided
    assert chosen == [1, 2, 3, 4] and boosted == {1, 3}
    v.cfg = dataclasses.replace(v.cfg, eval_max_uploads=1, eval_max_wait=3)
    chosen, boosted = plan(uids, 1)
    assert len(chosen) == 4 and rotation_bound(12, len(chosen)) == 3  # fairness wins
    v.cfg = dataclasses.replace(v.cfg, eval_time_budget=0.0, eval_max_uploads=0)
    chosen, boosted = plan(uids, 1)
    assert chosen == uids and boosted == {1, 2, 3, 6}  # no limit: every undecided one


def test_unrelated_uploads_cannot_lower_the_mix_bar_under_a_crowd(honest):
    """Many trainers share a direction, so each one's cosine to the others' sum passes the
    absolute bar, and uploads that share nothing (random deltas, free to send) fill the
    window's lower quartile. Measured against the median of the last window's peers, no
    trainer is a mix; their recompressed mean still is."""
    layout, _ = honest
    w = 2
    shapes = {n: p.shape for n, p in build_model(HP.model).named_parameters()}
    gen = torch.Generator().manual_seed(0)

    def noise():
        return {n: torch.randn(s, generator=gen) for n, s in shapes.items()}

    def compress(d):
        return Compressor(HP.compression).compress(d)  # no error feedback across uploads

    common = noise()
    dense = {
        u: {n: common[n] + (0.5 + 0.04 * u) * x for n, x in noise().items()} for u in range(1, 13)
    }
    dense.update({u: noise() for u in range(20, 30)})
    ups = {u: as_upload(compress(d), u, layout.pages(w, u, 2), w) for u, d in dense.items()}
    trainers = [u for u in dense if u < 20]
    plain = screen(w, ups, layout)
    scores = mix_scores(list(plain.prints.values()), plain.clusters, None)
    assert min(scores[u].loo_cosine for u in trainers) > 0.35
    assert max(scores[u].loo_cosine for u in trainers) > RULES.mix_cosine
    assert set(plain.rejected) & set(trainers)  # the quartile alone: a crowd looks like mixes
    peers = trainers[1::2]  # every other one: the median of a spread
    res = screen(w, ups, layout, trusted=peers)
    assert not res.rejected, res.rejected
    mean = {n: sum(dense[u][n] for u in trainers) / len(trainers) for n in shapes}
    ups[40] = as_upload(compress(mean), 40, layout.pages(w, 40, 2), w)
    res = screen(w, ups, layout, trusted=peers)
    assert set(res.rejected) == {40} and res.rejected[40].code is RejectCode.MIX_OF_OTHERS


def test_a_partial_copy_of_an_earlier_windows_upload_is_a_duplicate(honest):
    """Keys of windows before w are out before w's cut-off: an upload of w that is another
    uid's revealed upload of the last window, or of the one before, with 20% of its indices
    moved is a copy; the honest uploads of w are not, against either window (a miner's
    consecutive uploads share only 3-10% of their indices)."""
    layout, windows = honest
    earlier = {0: windows[0], 1: windows[1]}
    ups = dict(windows[2])
    assert not screen(2, ups, layout, earlier=earlier).rejected
    # a copier's copy of uid 3's last upload does not make uid 3's next upload a copy of it
    copied = {
        0: windows[0],
        1: {**windows[1], 9: dataclasses.replace(windows[1][3], uid=9, hotkey="hk9")},
    }
    assert not screen(2, ups, layout, earlier=copied).rejected
    for w in (1, 0):  # the last window, then the one before (the stale check saw only w - 1)
        stolen = swap_share(windows[w][3], 0.2)
        ups[9] = as_upload(stolen, 9, layout.pages(2, 9, 2), 2)
        ups[3] = as_upload(stolen, 3, layout.pages(2, 3, 2), 2)  # its owner sending it again
        res = screen(2, ups, layout, earlier=earlier)
        assert set(res.rejected) == {9}, res.rejected
        assert res.rejected[9].code is RejectCode.DUPLICATE
        assert f"uid 3's upload of window {w}" in res.rejected[9].detail
        # the check reads only the windows it is given
        assert not screen(2, ups, layout, earlier={1 - w: windows[1 - w]}).rejected
    # an exact copy links too (held uploads carry no content digest: the LSH bands find it)
    ups = {**windows[2], 9: as_upload(windows[0][3].delta, 9, layout.pages(2, 9, 2), 2)}
    res = screen(2, ups, layout, earlier=earlier)
    assert set(res.rejected) == {9} and "uid 3's upload of window 0" in res.rejected[9].detail


def test_a_held_window_keeps_its_prints_and_blobs_not_its_uploads(honest):
    """Once a window's work is done the cache drops its decoded uploads (at 150m an upload is
    19 MB decoded, 2.5 MB as a blob). It keeps each upload's print under that window's salt,
    decodes a held upload again only for an exact comparison (a copy's), and keeps the sketch
    of its peers' uploads under the next window's salt (the next mix check's reference)."""
    layout, windows = honest
    decoded = []

    def decode(c, w):
        decoded.append((w, c.uid))
        return windows[w][c.uid]

    cache = WindowCache("test", RULES, decode)
    cands = [Candidate(u, up.hotkey, blob=b"blob", upload=up) for u, up in windows[1].items()]
    cache.keep(1, cands)
    assert cache.earlier(2) == [] and cache.candidate(1, 3) is cands[2]  # kept whole
    cache.release(1, peers=[1, 2, 77])
    assert all(c.upload is None and c.blob == b"blob" for c in cands)
    agg = aggregate_sketch([windows[1][1], windows[1][2]], RULES, window_salt("test", 2))
    assert np.array_equal(cache.aggregate(2), agg) and cache.aggregate(1) is None
    (h,) = cache.earlier(2)
    assert (h.window, h.salt) == (1, window_salt("test", 1))
    assert [p.uid for p in h.prints] == sorted(windows[1]) and not any(p.sketch for p in h.prints)
    assert cache.earlier(1) == []  # only windows before the one screened

    def run(ups):
        salt = window_salt("test", 2)
        return screen_window(
            2, ups, layout=layout, replays=ReplayMemory(1), rules=RULES, salt=salt,
            aggregate=cache.aggregate(2), earlier=cache.earlier(2), freerider_min_norm=0.05,
        )  # fmt: skip

    assert not run(dict(windows[2])).rejected and decoded == []
    stolen = as_upload(swap_share(windows[1][3], 0.2), 9, layout.pages(2, 9, 2), 2)
    res = run({**windows[2], 9: stolen})
    assert set(res.rejected) == {9} and "uid 3's upload of window 1" in res.rejected[9].detail
    assert decoded == [(1, 3)]
    # it holds the last KEEP_WINDOWS windows
    for w in range(2, 2 + KEEP_WINDOWS):
        cache.keep(w, [Candidate(u, up.hotkey, upload=up) for u, up in windows[w % 3].items()])
    assert sorted(cache.windows) == list(range(2, 2 + KEEP_WINDOWS))


def test_exact_comparisons_make_the_vectors_again():
    """Prints keep no vector (a window's are 256 x 25 MB at 150m): the exact comparison of a
    candidate pair flattens the two uploads again, with the figures the vectors give."""
    original = as_upload(Compressor(HP.compression).compress({"w": torch.randn(64, 64)}), 3)
    copy = as_upload(swap_share(original, 0.2), 9)
    a, b = (make_print(u.uid, content_digest(u), u, RULES, 7) for u in (original, copy))
    assert a.nnz == flatten(original).nnz
    assert (a.exact().indices == flatten(original).indices).all()
    lk = copies.link(a, b, RULES)
    ov, sim = shared_overlap_and_cosine(flatten(original), flatten(copy))
    assert lk is not None and (lk.a, lk.b) == (3, 9)
    assert (lk.overlap, lk.similarity) == (ov, sim) and 0.7 <= ov < 1.0
    vectors = copies.Vectors(keep=1)
    assert copies.link(a, b, RULES, vectors) == lk and len(vectors.made) == 1
    # the one being compared stays while its partners come and go (least recently used out)
    c = make_print(5, "c", as_upload(swap_share(original, 0.3), 5), RULES, 7)
    vectors = copies.Vectors(keep=2)
    for p in (a, b, a, c):
        vectors(p)
    assert set(vectors.made) == {(3, a.digest), (5, "c")}


def test_the_stages_run_with_the_collector_paused(honest, monkeypatch):
    """The cyclic collector is off while the stages run (its passes walk every object the
    validator holds) and comes back as it was, also when a stage raises."""

    layout, windows = honest
    states = []
    real = free_riders
    monkeypatch.setattr(
        "template.validator.screen.free_riders",
        lambda *a: states.append(gc.isenabled()) or real(*a),
    )
    assert gc.isenabled()
    assert not screen(2, windows[2], layout).rejected
    assert states == [False] and gc.isenabled()
    monkeypatch.setattr("template.validator.screen.free_riders", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        screen(2, windows[2], layout)
    assert gc.isenabled()
    gc.disable()
    try:
        monkeypatch.setattr("template.validator.screen.free_riders", real)
        screen(2, windows[2], layout)
        assert not gc.isenabled()
    finally:
        gc.enable()
