"""Measure, judge, score and peer choice on small fixed cases (rates: scripts/bench_incentives.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from template.chain.types import SubnetParams
from template.hparams import hparams_hash
from template.protocol.aggregation import clip_factors
from template.signing import dev_keypair
from template.training.compression import Compressor
from template.training.model import build_model
from template.training.pages import PageDataset
from template.training.shards import TokenStream, write_shards
from template.training.tokenizer import ByteTokenizer
from template.training.wire import decode_upload, encode_upload
from template.validator.judge import (
    Decision,
    Evidence,
    JudgeRules,
    helpful_uploads,
    judge_window,
)
from template.validator.leader import choose_peers, window_verdicts
from template.validator.measure import (
    Measurement,
    Measurer,
    clustered_var_of_mean,
    control_sequences,
    draw_pages,
    own_sequences,
    reference_uids,
    t_to_z,
    welch_df,
)
from template.validator.outcomes import MISSING, RejectCode, Rejection
from template.validator.score import (
    FullWorkMemory,
    Scoreboard,
    full_work_rate,
    incentive_scores,
    window_values,
)
from template.validator.weights import compute_weights

from ..conftest import corpus_text
from ..protocol.test_aggregation import inflated
from .harness import small_hparams

HP = small_hparams()
RULES = JudgeRules(alpha=0.02, memory=0.9, harm_z=3.0)
PENALTIES = dict(invalid_penalty=1.0, missing_penalty=0.25)


def measurement(uid: int, fit: float, gain: float = 0.01, n: int = 24, seed: int = 0):
    """A measurement whose own-page excess is ``fit`` standard deviations above control."""
    g = torch.Generator().manual_seed(seed)
    noise = lambda: torch.randn(n, generator=g, dtype=torch.float64)  # noqa: E731
    own = noise() + fit
    ctrl = noise()
    ctrl_gain = gain + 0.001 * noise()
    return Measurement(uid, 1.0, tuple(range(n)), own, ctrl, ctrl_gain, 3.0)


def test_t_to_z_matches_the_exact_tail_and_never_exceeds_it():
    # exact values: scipy.stats.norm.isf(scipy.stats.t.sf(t, df)), scipy 1.17
    exact = {(2.0, 5): 1.6355, (3.0, 5): 2.1688, (2.5, 10): 2.1514, (1.0, 3): 0.8578}
    exact[(2.0, 40)] = 1.9405
    for (t, df), z in exact.items():
        assert abs(t_to_z(t, df) - z) < 0.01
        assert t_to_z(t, df) <= z + 0.005  # a proof is never easier than the exact test
        assert t_to_z(-t, df) == -t_to_z(t, df)
    assert t_to_z(2.0, math.inf) == 2.0


def test_clustered_variance_reduces_to_the_plain_one_for_singleton_groups():
    x = torch.randn(30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v, df = clustered_var_of_mean(x, ())
    assert math.isclose(v, float(x.var()) / 30) and df == 29
    assert clustered_var_of_mean(x, [7] * 30) == (math.inf, 0)  # one group: no estimate


def _page_effect_measurements(count: int, pages: int, per_page: int, icc: float):
    g = torch.Generator().manual_seed(5)
    n = pages * per_page
    labels = tuple(p for _ in range(per_page) for p in range(pages))
    for i in range(count):
        page = torch.randn(pages, generator=g, dtype=torch.float64) * math.sqrt(icc)
        own = page.repeat(per_page) + torch.randn(n, generator=g, dtype=torch.float64) * math.sqrt(
            1 - icc
        )
        ctrl = torch.randn(n, generator=g, dtype=torch.float64)
        yield Measurement(i, 1.0, labels, own, ctrl, ctrl, 3.0)


def test_fit_z_of_pages_that_move_together_keeps_the_false_positive_rate():
    """Without a fit, sequences of one page share an effect (the document's text): an i.i.d.
    standard error proves such an upload too often; the page-clustered one keeps alpha."""
    bar = RULES.z_proof
    ms = list(_page_effect_measurements(3000, pages=6, per_page=6, icc=0.15))
    clustered = sum(m.fit_z > bar for m in ms) / len(ms)
    iid = sum(
        replace_pages(m).fit_z > bar
        for m in ms  # every sequence its own page
    ) / len(ms)
    assert clustered < 0.03  # alpha 0.02 and 3,000 draws: SE 0.0026
    assert iid > 0.04
    one_page = Measurement(0, 1.0, (4,) * 6, torch.ones(6), torch.zeros(6), torch.zeros(6), 3.0)
    assert one_page.fit_z == 0.0  # one page tells nothing of how pages vary: no evidence


def test_fit_z_of_a_two_page_claim_keeps_the_false_positive_rate():
    """A claim of 2 pages (the lazy miner's on tiny) has a clustered own variance of one
    degree of freedom, often far too small by chance. Weighed by it, the Welch df came out
    large just when t was inflated: a null z with SD 1.2 and 3% above z(0.99). The df now
    weigh the samples by their i.i.d. variances (``welch_df``)."""
    g = torch.Generator().manual_seed(11)
    bar = JudgeRules().z_proof  # the default alpha, 0.01
    labels = tuple(p for _ in range(8) for p in range(2))
    zs = []
    for i in range(4000):
        page = torch.randn(2, generator=g, dtype=torch.float64) * math.sqrt(0.08)
        own = page.repeat(8) + torch.randn(16, generator=g, dtype=torch.float64) * math.sqrt(0.92)
        ctrl = torch.randn(36, generator=g, dtype=torch.float64)
        zs.append(Measurement(i, 1.0, labels, own, ctrl, ctrl, 3.0).fit_z)
    above = sum(z > bar for z in zs) / len(zs)
    assert above < 0.016  # alpha 0.01 and 4,000 draws: SE 0.0016 (was 0.031; now 0.002)
    assert sum(z > 3.0 for z in zs) / len(zs) < 0.004  # z(0.9987); was 0.012
    sd = math.sqrt(sum(z * z for z in zs) / len(zs))
    assert 0.8 < sd < 1.05  # was 1.18; now 0.93


def test_welch_df_weighs_each_sample_by_its_variance():
    assert math.isclose(welch_df(1.0, 5, 1.0, 35), 4.0 / (1 / 5 + 1 / 35))
    assert welch_df(0.0, 1, 2.0, 35) == 35  # all the variance in one sample: its df
    assert welch_df(2.0, 1, 0.0, 35) == 1
    assert welch_df(0.0, 1, 0.0, 35) == 0.0  # no variance: no df (the caller gives no z)


def _crowd_measurement(g, *, slope: float, fit: float, pages=6, per_page=6, spread=1.0):
    """Own and control sequences where the upload gains ``slope`` x the crowd's gain (a
    per-sequence spread ``spread``) plus ``fit`` on its own pages, plus unit noise with a page
    effect on the own side."""
    n = pages * per_page
    labels = tuple(p for _ in range(per_page) for p in range(pages))
    randn = lambda k: torch.randn(k, generator=g, dtype=torch.float64)  # noqa: E731
    r_own, r_ctrl = spread * randn(n), spread * randn(n)
    page = 0.4 * randn(pages)
    u_own = slope * r_own + fit + page.repeat(per_page) + randn(n) * math.sqrt(1 - 0.16)
    u_ctrl = slope * r_ctrl + randn(n)
    return Measurement(0, 1.0, labels, u_own - r_own, u_ctrl - r_ctrl, u_ctrl, 3.0, own_gain=u_own)


def test_the_crowds_gain_is_a_control_variate_with_a_fitted_slope():
    """An upload that gains twice what the crowd gains on each sequence: the plain excess
    (slope 1) keeps half of that spread as noise, the fitted slope removes it."""
    m = _crowd_measurement(torch.Generator().manual_seed(2), slope=2.0, fit=1.0, spread=3.0)
    assert abs(m.crowd_slope - 2.0) < 0.1
    plain = dataclasses.replace(m, own_gain=None)
    assert plain.crowd_slope == 1.0
    assert math.isclose(plain.fit_excess, float(m.own_excess.mean() - m.control_excess.mean()))
    assert m.fit_z > RULES.z_proof > plain.fit_z
    assert m.fit_z > 2 * plain.fit_z
    flat = dataclasses.replace(m, own_excess=m.own_gain, control_excess=m.control_gain)
    assert flat.crowd_slope == 1.0  # no crowd (it gains 0 everywhere): the plain excess


def test_a_fitted_slope_keeps_the_false_positive_rate():
    """Without a fit the slope is fitted on noise too; the test still proves at rate alpha."""
    g = torch.Generator().manual_seed(9)
    bar = RULES.z_proof
    zs = [_crowd_measurement(g, slope=1.7, fit=0.0, spread=2.0).fit_z for _ in range(3000)]
    above = sum(z > bar for z in zs) / len(zs)
    assert 0.005 < above < 0.03  # alpha 0.02 and 3,000 draws: SE 0.0026
    sd = math.sqrt(sum(z * z for z in zs) / len(zs))
    assert 0.9 < sd < 1.1


def replace_pages(m: Measurement) -> Measurement:
    return dataclasses.replace(m, own_pages=tuple(range(m.own_excess.numel())))


def test_evidence_is_a_discounted_stouffer_sum():
    ev = Evidence()
    assert ev.add(1, 2.0, 0.5) == 2.0
    # S = 0.5 * 2 + 1 = 2, V = 0.25 + 1 -> Z = 2 / sqrt(1.25)
    assert math.isclose(ev.add(1, 1.0, 0.5), 2.0 / math.sqrt(1.25))
    ev.add(2, float("nan"), 0.9)
    assert ev.z(2) == -3.0  # a non-finite window is the worst evidence, clipped
    ev.add(3, 50.0, 0.9)
    assert ev.z(3) == 3.0  # one outlier window cannot make a proof on its own


def test_training_evidence_accumulates_and_noise_earns_zero():
    ev = Evidence()
    history = []
    for w in range(4):
        d = judge_window(
            {1: measurement(1, 1.0, seed=w), 2: measurement(2, 0.0, seed=w)}, [], ev, RULES
        )
        history.append(d)
    assert history[-1][1].credited  # z ~ 5 per window on 24 + 24 sequences
    assert not history[-1][2].credited and history[-1][2].verdict == "unproven"
    assert history[-1][2].rejection is None  # no evidence of training is not a penalty
    vals = window_values(history[-1], {}, **PENALTIES)
    assert vals == {1: 1.0, 2: 0.0}


def test_pay_is_capped_by_the_share_of_the_window_the_claim_covers():
    """A lazy miner that pads its quarter of the work with a copy of the others' mean has a
    full-size gain, but its page claim (and so its proof) covers a quarter of the window."""
    ev = Evidence()
    for w in range(4):
        ms = {1: measurement(1, 1.0, seed=w), 2: measurement(2, 1.0, seed=w + 10)}
        d = judge_window(ms, [], ev, RULES, work={1: 1.0, 2: 0.25})
    assert d[1].credited and d[2].credited and d[2].work == 0.25
    assert "work 0.25" in str(d[2]) and "work" not in str(d[1])
    vals = window_values(d, {}, **PENALTIES)
    assert d[1].pay == d[2].pay == 1.0
    # about the same gain: a quarter of the claim, at the rate the full claim earned
    assert vals[1] > 0.9 and math.isclose(vals[2], 0.25 * vals[1])
    small = {
        1: Decision(1, "credited", gain=0.02),
        2: Decision(2, "credited", gain=0.002, work=0.5),
    }
    assert window_values(small, {}, **PENALTIES)[2] == 0.1  # a smaller gain still decides


def test_one_inflated_gain_does_not_shrink_the_others_values():
    """Values are relative to the upper median of the credited gains, not the maximum: a
    lazy mixer's copied gain (here twice an honest one, a third of the work) does not lower
    the honest miners' values, and its own is capped by its claim."""
    honest = {u: Decision(u, "credited", gain=g) for u, g in ((1, 0.020), (2, 0.019), (3, 0.018))}
    mixer = {4: Decision(4, "credited", gain=0.040, work=1 / 3)}
    vals = window_values({**honest, **mixer}, {}, **PENALTIES)
    # par 0.020 (the upper median of four gains); the maximum would have halved these
    assert vals[1] == 1.0 and math.isclose(vals[2], 0.95) and math.isclose(vals[3], 0.9)
    assert math.isclose(vals[4], 0.95 / 3)  # a third of the full claims' median value
    # two credited uploads: the larger one is the par (the upper median)
    pair = window_values({1: honest[1], 5: Decision(5, "credited", gain=0.005)}, {}, **PENALTIES)
    assert pair == {1: 1.0, 5: 0.25}


def test_a_partial_claim_earns_at_most_its_share_of_what_full_work_earned():
    """A lazy miner (a third of the pages) whose evidence is a little stronger than the honest
    miners' is paid more per unit of evidence near the bar; it earns at most a third of the
    median value of the window's earning full claims. Full claims that earn nothing (unproven,
    rejected, or a gain within noise) set no rate, so a crowd of them cannot zero it."""
    honest = {
        u: Decision(u, "credited", gain=0.02, pay=p) for u, p in ((1, 0.1), (2, 0.2), (3, 0.3))
    }
    lazy = {4: Decision(4, "credited", gain=0.015, work=1 / 3, pay=0.9)}
    vals = window_values({**honest, **lazy}, {}, **PENALTIES)
    assert [round(vals[u], 6) for u in (1, 2, 3)] == [0.1, 0.2, 0.3]
    assert math.isclose(vals[4], 0.2 / 3)  # not 1/3 x 0.9 = 0.3, more than any honest miner
    # below the rate: its own value stands
    slow = {4: Decision(4, "credited", gain=0.015, work=1 / 3, pay=0.1)}
    assert math.isclose(window_values({**honest, **slow}, {}, **PENALTIES)[4], 0.1 / 3)
    # no full claim earns: nothing to compare with; zero-gain, unproven and rejected full
    # claims do not count
    others = {
        5: Decision(5, "credited", gain=0.0),
        6: Decision(6, "unproven", gain=0.03),
        7: Decision(7, "rejected", Rejection(RejectCode.HARMFUL, "harm"), gain=-0.1),
    }
    alone = window_values({**others, **lazy}, {}, **PENALTIES)
    assert math.isclose(alone[4], 0.9 / 3) and alone[5] == alone[6] == alone[7] == 0.0
    assert full_work_rate({**others, **lazy}, alone) is None
    assert full_work_rate({**honest, **lazy}, vals) == 0.2


def test_without_an_earning_full_claim_a_partial_claim_is_capped_by_the_latest_full_rate():
    """Window 10's full claims earned a median 0.2; in windows 11-13 none earns (the honest
    crowd's evidence dips under the bar) and a lazy miner (a third of the pages) is credited
    alone: it earns at most a third of 0.2 for ``windows`` windows, then its own value again.
    A later window with earning full claims sets a new rate; junk full claims set none."""
    honest = {
        u: Decision(u, "credited", gain=0.02, pay=p) for u, p in ((1, 0.1), (2, 0.2), (3, 0.3))
    }
    unproven = {u: Decision(u, "unproven", gain=0.02) for u in (1, 2, 3)}
    lazy = {4: Decision(4, "credited", gain=0.015, work=1 / 3, pay=0.9)}
    memory = FullWorkMemory(windows=2)
    assert memory.recent(10) is None  # nothing remembered yet
    memory.note(10, {**honest, **lazy}, window_values({**honest, **lazy}, {}, **PENALTIES))
    got = []
    for window in (11, 12, 13):
        vals = window_values(
            {**unproven, **lazy}, {}, **PENALTIES, recent_rate=memory.recent(window)
        )
        memory.note(window, {**unproven, **lazy}, vals)  # no earning full claim: kept
        got.append(vals[4])
    assert [round(v, 6) for v in got] == [round(0.2 / 3, 6)] * 2 + [0.3]  # 13: too old
    assert memory.recent(10) is None and memory.recent(12) == 0.2  # only later windows
    cheap = {u: Decision(u, "credited", gain=0.02, pay=0.03) for u in (1, 2, 3)}
    memory.note(14, {**cheap, **lazy}, window_values({**cheap, **lazy}, {}, **PENALTIES))
    assert math.isclose(memory.recent(15), 0.03)
    assert FullWorkMemory(windows=0, window=10, rate=0.2).recent(11) is None  # switched off


def test_harm_needs_statistical_evidence():
    ev = Evidence()
    n = 24
    small_loss = Measurement(
        1,
        1.0,
        tuple(range(n)),
        torch.zeros(n, dtype=torch.float64),
        torch.zeros(n, dtype=torch.float64),
        torch.linspace(-0.02, 0.019, n, dtype=torch.float64),
        3.0,
    )
    clear_harm = Measurement(
        2,
        1.0,
        tuple(range(n)),
        torch.zeros(n, dtype=torch.float64),
        torch.zeros(n, dtype=torch.float64),
        -0.05 + 0.001 * torch.randn(n, dtype=torch.float64),
        3.0,
    )
    d = judge_window({1: small_loss, 2: clear_harm}, [], ev, RULES)
    assert d[1].rejection is None  # a mean loss rise within noise earns 0, no penalty
    assert d[2].rejection is not None and d[2].rejection.code is RejectCode.HARMFUL
    vals = window_values(d, {}, **PENALTIES)
    assert vals[1] == 0.0 and vals[2] == 0.0  # earns nothing, is never a peer


def test_harm_reads_the_control_t_through_its_degrees_of_freedom():
    """36 control sequences whose mean gain is -3.1 standard errors: Student's t at 35
    degrees of freedom has that tail at a normal z of about -2.9, within the -3 limit; the
    same t over 10,000 sequences stays -3.1 and is harmful."""

    def at_t(t: float, n: int) -> Measurement:
        x = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        gain = (x - x.mean()) / x.std() + t / math.sqrt(n)  # SD 1, mean t standard errors
        zeros = torch.zeros(n, dtype=torch.float64)
        return Measurement(1, 1.0, tuple(range(n)), zeros, zeros, gain, 3.0)

    few, many = at_t(-3.1, 36), at_t(-3.1, 10_000)
    assert -3.0 < few.harm_z < -2.8 and math.isclose(few.harm_z, t_to_z(-3.1, 35))
    assert abs(many.harm_z + 3.1) < 0.01
    assert judge_window({1: few}, [], Evidence(), RULES)[1].rejection is None
    harmful = judge_window({1: many}, [], Evidence(), RULES)[1].rejection
    assert harmful is not None and harmful.code is RejectCode.HARMFUL


def test_values_by_what_a_rejection_proves():
    rejected = {
        3: Rejection(RejectCode.BAD_SIGNATURE, "x"),
        4: MISSING,
        5: Rejection(RejectCode.DUPLICATE, "x"),
        6: Rejection(RejectCode.MIX_OF_OTHERS, "x"),
        7: Rejection(RejectCode.LATE, "x"),
    }
    credited = {
        1: Decision(1, "credited", gain=0.02),
        2: Decision(2, "credited", gain=0.005),  # a lazy miner: a quarter of the gain
        8: Decision(8, "not_evaluated"),
    }
    vals = window_values(credited, rejected, **PENALTIES)
    assert vals == {1: 1.0, 2: 0.25, 3: -1.0, 4: -0.25, 5: 0.0, 6: 0.0, 7: -0.25}
    assert 8 not in vals  # rotation: the score stays as it was


def test_a_window_without_any_upload_holds_nothing_against_anyone():
    everyone_missing = {3: MISSING, 4: MISSING}
    assert window_values({}, everyone_missing, **PENALTIES) == {}  # no update
    one_arrived = {**everyone_missing, 5: Rejection(RejectCode.BAD_SIGNATURE, "x")}
    assert window_values({}, one_arrived, **PENALTIES) == {3: -0.25, 4: -0.25, 5: -1.0}
    measured = {6: Decision(6, "unproven")}
    assert window_values(measured, everyone_missing, **PENALTIES) == {3: -0.25, 4: -0.25, 6: 0.0}


def test_one_false_alarm_does_not_zero_an_honest_miner():
    board = Scoreboard(alpha=0.3)
    for _ in range(8):
        board.update(1, "hk1", 1.0)
        board.update(2, "hk2", 0.5)
    board.update(1, "hk1", -1.0)  # one (false) harmful verdict
    assert board.scores[1] > 0.3
    params = SubnetParams(1, 10, 2, min_allowed_weights=1, max_weight_limit=1.0)
    weights = compute_weights(board.scores, [1, 2], params, exclude=set())
    assert weights[1] > 0.25 and weights[2] > 0


def test_copy_credit_goes_to_the_uploader_whose_pages_fit():
    ev = Evidence()
    for w in range(3):  # uid 1 trains on its pages; uid 2 uploads a near copy of it
        d = judge_window(
            {1: measurement(1, 1.0, seed=w), 2: measurement(2, 0.0, seed=w)}, [(2, 1)], ev, RULES
        )
    assert d[1].credited
    assert d[2].verdict == "unattributed" and d[2].rejection is None
    vals = window_values(d, {}, **PENALTIES)
    assert vals[1] == 1.0 and vals[2] == 0.0


def test_unclear_cluster_earns_nothing_and_rejects_nobody():
    ev = Evidence()  # two members that both fit their own pages: the content cannot tell
    d = judge_window({1: measurement(1, 3.0), 2: measurement(2, 3.0)}, [(1, 2)], ev, RULES)
    assert {x.verdict for x in d.values()} == {"unattributed"}
    assert all(x.rejection is None for x in d.values())
    assert window_values(d, {}, **PENALTIES) == {1: 0.0, 2: 0.0}


def test_a_copier_proven_by_chance_cannot_take_a_far_stronger_originals_credit():
    ev = Evidence()  # uid 1: a long honest record; uid 2 copies it and is proven by chance
    ev.s, ev.v = {1: 12.0, 2: 3.5}, {1: 1.0, 2: 1.0}
    d = judge_window(
        {1: measurement(1, 1.0, seed=3), 2: measurement(2, 0.0, seed=2)}, [(2, 1)], ev, RULES
    )
    assert d[2].evidence_z >= RULES.z_proof  # both proven ...
    assert d[1].evidence_z - d[2].evidence_z >= RULES.z_lead  # ... the original far ahead
    assert d[1].credited and d[2].verdict == "unattributed" and d[2].rejection is None
    # the same copier within z_lead of the original: the content cannot tell, nobody earns
    ev.s, ev.v = {1: 2.0, 2: 3.5}, {1: 1.0, 2: 1.0}
    d = judge_window(
        {1: measurement(1, 1.0, seed=3), 2: measurement(2, 0.0, seed=2)}, [(2, 1)], ev, RULES
    )
    assert 0 < d[1].evidence_z - d[2].evidence_z < RULES.z_lead
    assert {x.verdict for x in d.values()} == {"unattributed"}


def test_a_proven_original_keeps_its_credit_next_to_a_close_copier():
    ev = Evidence()  # uid 1 proven, its copier uid 2 unproven but within the copy margin
    m1, m2 = measurement(1, 0.7, seed=6), measurement(2, 0.5, seed=6)
    d = judge_window({1: m1, 2: m2}, [(1, 2)], ev, RULES)
    assert d[1].evidence_z - d[2].evidence_z < 1.0
    assert d[1].credited and d[2].verdict == "unattributed" and d[2].rejection is None


HOTKEYS = {u: f"hk{u}" for u in range(1, 6)}


def test_only_credited_uploads_are_peers():
    decisions = {
        1: Decision(1, "credited", gain=0.1),
        2: Decision(2, "unproven", gain=0.1),
        3: Decision(3, "unattributed", gain=0.1),
    }
    doc = choose_peers(4, {1: 0.5, 2: 0.9, 3: 0.7}, decisions, HOTKEYS, HP, RULES)
    assert [u for u, _ in doc.peers] == [1]
    empty = choose_peers(4, {2: 0.9}, {}, HOTKEYS, HP, RULES)
    assert empty.peers == () and empty.basis == "scores"  # never the bootstrap rule


def test_a_chance_credit_that_does_not_lower_the_loss_is_no_peer():
    """A non-trainer credited by chance (rate alpha) whose delta does not help (a random
    delta: gain below 0) earns nothing and stays out of the aggregate, though the list has
    room; a credited upload that lowers the loss keeps its place."""
    chance = Decision(2, "credited", gain=-0.002, gain_z=-1.5, evidence_z=2.2, pay=0.07)
    good = Decision(1, "credited", gain=0.05, gain_z=9.0, evidence_z=6.0, pay=1.0)
    assert good.earns and not chance.earns
    assert not Decision(3, "credited", gain=float("nan")).earns
    doc = choose_peers(4, {1: 0.2, 2: 0.9}, {1: good, 2: chance}, HOTKEYS, HP, RULES)
    assert HP.window.peers_per_window >= 2
    assert [u for u, _ in doc.peers] == [1] and doc.reserves == ()
    values = window_values({1: good, 2: chance}, {}, **PENALTIES)
    assert values[1] > 0 and values[2] == 0.0


def test_the_published_verdicts_say_why_each_miner_was_or_was_not_paid():
    harm = Rejection(RejectCode.HARMFUL, "control loss rises: harm z -4.72")
    decisions = {
        1: Decision(1, "credited", gain=0.05, fit_z=1.9, evidence_z=6.0, pay=0.8),
        2: Decision(2, "rejected", harm, gain=-0.03, fit_z=0.7, evidence_z=3.0, pay=1.0),
        3: Decision(3, "unproven", gain=0.02, fit_z=0.4, evidence_z=1.1, pay=1.0),
        4: Decision(4, "not_evaluated"),
    }
    late = Rejection(RejectCode.LATE, "first seen 3.2 s after the cut-off")
    rejected = {5: late, 6: MISSING}
    values = window_values(decisions, rejected, **PENALTIES)
    hotkeys = {u: f"hk{u}" for u in range(1, 8)}  # every miner it looked for
    del hotkeys[7]  # one it did not look for (no bucket): no verdict
    doc = window_verdicts(9, hotkeys, decisions, rejected, values, HP)
    assert doc.window == 9 and doc.hparams_hash == hparams_hash(HP)
    got = {v.uid: v for v in doc.verdicts}
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert (got[1].verdict, got[1].pay, got[1].value) == ("credited", 0.8, values[1])
    assert got[1].value > 0 and (got[1].gain, got[1].fit_z, got[1].evidence_z) == (0.05, 1.9, 6.0)
    assert (got[2].verdict, got[2].reason) == ("rejected", str(harm)) and got[2].pay == 0.0
    assert got[2].value == values[2] == 0.0  # a harm verdict costs nothing: it earns 0
    assert (got[3].verdict, got[3].value) == ("unproven", 0.0)
    assert (got[4].verdict, got[4].value) == ("not_evaluated", 0.0)
    assert (got[5].verdict, got[5].reason, got[5].value) == ("rejected", str(late), values[5])
    assert (got[6].verdict, got[6].reason, got[6].value) == ("missing", "", values[6])
    assert got[5].value == got[6].value < 0  # accidents: late costs what missing does
    assert all(v.hotkey == f"hk{v.uid}" for v in doc.verdicts)


def test_draw_pages_skips_excluded_pages_sparse_and_dense():
    import random

    sparse = draw_pages(random.Random(1), 1000, 20, exclude={0, 1, 2, 5, 999, -4, 5000})
    assert len(sparse) == len(set(sparse)) == 20
    assert not {0, 1, 2, 5, 999} & set(sparse) and all(0 <= p < 1000 for p in sparse)
    dense = draw_pages(random.Random(1), 10, 8, exclude=range(4))
    assert sorted(dense) == [4, 5, 6, 7, 8, 9]  # fewer left than asked: all of them
    assert draw_pages(random.Random(1), 5, 3, exclude=range(5)) == []


def test_pages_two_uploads_claim_are_nobodys_own_and_claimed_pages_are_never_control(
    tiny_dataset,
):
    """Assignments are drawn per uid, so two uploads can share a page: neither may count it
    as its own (a mix of the other's delta fits it), and no claimed page is a control page."""
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = build_model(HP.model)
    a, b = _upload(ds, model, 3, 1), _upload(ds, model, 3, 2)
    shared = a.pages[0]
    b = dataclasses.replace(b, pages=(shared, *b.pages[1:]))
    cpages, _ = control_sequences(ds, 6, 3, "v")
    c = dataclasses.replace(_upload(ds, model, 3, 4), pages=tuple(cpages[:3]))
    m = Measurer(model, ds, own=8, control=6, salt="v")
    m.begin_window(3, [a, b, c], 1.0)
    for up in (a, b):
        res = m.measure(up)
        assert shared not in res.own_pages and res.own_pages
        assert set(res.own_pages) <= set(up.pages)
        assert not set(res.control_pages) & {*a.pages, *b.pages, *c.pages}
    # an upload whose every page is shared has no own sequence: no evidence, not a crash
    twin = dataclasses.replace(_upload(ds, model, 3, 5), pages=a.pages)
    m.begin_window(3, [a, twin], 1.0)
    alone = m.measure(twin)
    assert alone.own_pages == () and alone.fit_z == 0.0 and alone.fit_excess == 0.0


def test_each_upload_is_measured_on_its_own_part_of_the_window_control_pool(tiny_dataset):
    """Uploads trained alike must not share one control sample's luck (a Sybil crowd passing
    the bar together): with a pool, the same delta under two uids gets two control samples,
    each ``control`` long, from pages nobody claimed, the same on a second look; with a pool
    of 1 every upload gets the window's one sample, as before the pool."""
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = build_model(HP.model)
    ref = _upload(ds, model, 3, 1)
    a = _upload(ds, model, 3, 2)
    twin = dataclasses.replace(a, uid=3, pages=tuple(ds.layout.pages(3, 3, 4)))
    claimed = {*ref.pages, *a.pages, *twin.pages}
    for pool in (1, 3):
        m = Measurer(model, ds, own=6, control=6, salt="v", control_pool=pool)
        m.begin_window(3, [ref, a, twin], 1.0, None, {1})  # both measured against uid 1
        ma, mt = m.measure(a), m.measure(twin)
        for got in (ma, mt):
            assert len(got.control_pages) == 6 and not set(got.control_pages) & claimed
        if pool == 1:  # one shared sample: the same delta has the same control figures
            assert ma.control_pages == mt.control_pages
            assert torch.equal(ma.control_excess, mt.control_excess)
            continue
        assert ma.control_pages != mt.control_pages
        assert not torch.equal(ma.control_excess, mt.control_excess)
        assert m.measure(a).control_pages == ma.control_pages  # drawn, not random per call
        boosted = m.measure(a, boost=2)
        assert len(boosted.control_pages) == 12 and not set(boosted.control_pages) & claimed
    with pytest.raises(ValueError, match="control_pool"):
        Measurer(model, ds, own=6, control=6, salt="v", control_pool=0)


def _upload(ds, model, window: int, uid: int, scale: float = 0.01):
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(uid)
    delta = Compressor(HP.compression).compress(
        {n: torch.randn(s, generator=g) * scale for n, s in shapes.items()}
    )
    blob = encode_upload(
        delta,
        window=window,
        uid=uid,
        hparams_hash=hparams_hash(HP),
        config=HP.compression,
        key=dev_keypair(f"//Alice//u{uid}"),
        pages=ds.layout.pages(window, uid, 4),
    )
    return decode_upload(
        blob, max_bytes=1 << 26, expected={}, param_shapes=shapes, config=HP.compression
    )


def test_the_reference_is_the_proven_crowd_once_two_proven_uids_upload(tiny_dataset):
    """A shadow (not proven) must not enter an honest upload's reference: with a crowd given,
    an upload outside it changes no other upload's measurement, and its own reference is the
    crowd's mean, as the leave-one-out mean of the others was."""
    assert reference_uids([1, 2, 3, 4], [2, 3, 9]) == {2, 3}
    assert reference_uids([1, 2, 3, 4], [2, 9]) == {1, 2, 3, 4}  # one is not a crowd
    assert reference_uids([1, 2], []) == {1, 2}
    # before two are proven, the uids leaning towards a proof; the proven first when two are
    assert reference_uids([1, 2, 3, 4], [2], [1, 2, 9]) == {1, 2}
    assert reference_uids([1, 2, 3, 4], [2, 3], [1, 2, 3]) == {2, 3}
    assert reference_uids([1, 2, 3, 4], [2], [2, 9]) == {1, 2, 3, 4}
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = build_model(HP.model)
    a, b = _upload(ds, model, 3, 1), _upload(ds, model, 3, 2)
    shadow = _upload(ds, model, 3, 3, scale=0.05)
    other = dataclasses.replace(_upload(ds, model, 3, 4, scale=0.05), uid=3, pages=shadow.pages)
    m = Measurer(model, ds, own=6, control=6, salt="v")

    def measured(uploads, uid, crowd):
        m.begin_window(3, uploads, 2.0, None, crowd)
        return m.measure(next(up for up in uploads if up.uid == uid))

    with_shadow = measured([a, b, shadow], 1, {1, 2})
    with_other = measured([a, b, other], 1, {1, 2})
    assert torch.equal(with_shadow.own_excess, with_other.own_excess)
    assert torch.equal(with_shadow.control_excess, with_other.control_excess)
    everyone = measured([a, b, shadow], 1, None)
    assert not torch.allclose(everyone.own_excess, with_shadow.own_excess)  # it was in it
    outside = measured([a, b, shadow], 3, {1, 2})
    loo = measured([a, b, shadow], 3, None)
    assert torch.allclose(outside.own_excess, loo.own_excess, atol=1e-6)
    assert torch.allclose(outside.control_excess, loo.control_excess, atol=1e-6)


def test_an_inflated_upload_is_measured_at_the_size_the_outer_step_clips_it_to(tiny_dataset):
    """Values multiplied past the median norm must not buy a larger measured gain: the
    aggregate clips them, so the measurement does too (``clip_factors``)."""
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = build_model(HP.model)
    ups = {u: _upload(ds, model, 3, u) for u in (1, 2, 3)}
    base = _upload(ds, model, 3, 4)
    m = Measurer(model, ds, own=6, control=6, salt="v")
    # a hostile upload with enormous (finite) values: measured at the median size, not NaN
    huge = inflated(base, 1e30)
    hf = clip_factors({**ups, 4: huge}, HP)
    m.begin_window(3, [*ups.values(), huge], 2.0, hf)
    tamed = m.measure(huge)
    assert tamed.finite and 1e-31 < hf[4] < 1e-29
    m.begin_window(3, [*ups.values(), huge], 2.0)
    assert not m.measure(huge).finite  # unclipped it breaks the model
    big = inflated(base, 4.0)
    factors = clip_factors({**ups, 4: big}, HP)
    f = factors[4]
    assert 0.2 < f < 0.3
    m.begin_window(3, [*ups.values(), big], 2.0, factors)
    clipped = m.measure(big)
    assert clipped.scale == pytest.approx(2.0 * f)
    # the same as an upload already at the clipped size (which the clip leaves alone)
    small = inflated(base, 4.0 * f)
    m.begin_window(3, [*ups.values(), small], 2.0, {**factors, 4: 1.0})
    plain = m.measure(small)
    for a, b in [
        (clipped.control_gain, plain.control_gain),
        (clipped.own_excess, plain.own_excess),
        (clipped.control_excess, plain.control_excess),
    ]:
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(tamed.control_gain, plain.control_gain, atol=1e-4)
    # unclipped, the inflated values move the losses four times as far
    m.begin_window(3, [*ups.values(), big], 2.0)
    raw = m.measure(big)
    assert raw.scale == 2.0
    assert float(raw.control_gain.abs().mean()) > 2 * float(clipped.control_gain.abs().mean())
    # another upload's reference holds the inflated one at its clipped size too
    m.begin_window(3, [*ups.values(), big], 2.0, factors)
    ref_clipped = m.measure(ups[1])
    m.begin_window(3, [*ups.values(), small], 2.0, {**factors, 4: 1.0})
    ref_plain = m.measure(ups[1])
    assert torch.allclose(ref_clipped.control_excess, ref_plain.control_excess, atol=1e-5)


def test_measurement_pairs_sequences_and_leaves_the_model_unchanged(tiny_dataset):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = build_model(HP.model)
    before = [p.detach().clone() for p in model.parameters()]
    up = _upload(ds, model, 3, 1)
    pages, seqs = own_sequences(ds, up, 6, 3, "v")
    assert set(pages) <= set(up.pages) and seqs.shape[0] == len(pages) == 6
    assert len(set(pages)) == 4  # one sequence per page while distinct pages last
    assert len(set(pages[:4])) == 4
    cpages, _ = control_sequences(ds, 6, 3, "v")
    assert all(not ds.layout.is_heldout(p) for p in cpages)  # same distribution, not the tail
    m = Measurer(model, ds, own=6, control=6, salt="v")
    # same content, its own pages: the leave-one-out reference equals the upload
    twin = dataclasses.replace(_upload(ds, model, 3, 1), pages=tuple(ds.layout.pages(3, 2, 4)))
    assert not set(twin.pages) & set(up.pages)
    m.begin_window(3, [up, twin], 2.0)
    res = m.measure(up)
    assert torch.allclose(res.own_excess, torch.zeros(6, dtype=torch.float64), atol=1e-5)
    assert abs(res.fit_excess) < 1e-5 and res.finite
    m.begin_window(3, [up], 2.0)  # alone: the reference is the global model itself
    alone = m.measure(up)
    assert torch.allclose(alone.control_excess, alone.control_gain)
    assert torch.allclose(alone.own_excess, alone.own_gain)
    assert alone.crowd_slope == 1.0  # the crowd gains nothing: the plain excess
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_helpful_uploads_are_peers_only_while_none_is_credited():
    d = Decision(3, "unproven", gain=0.1, evidence_z=1.2, gain_z=4.0)
    young = choose_peers(4, {}, {3: d}, HOTKEYS, HP, RULES)
    assert [u for u, _ in young.peers] == [3]
    credited = Decision(1, "credited", gain=0.1)
    mature = choose_peers(4, {1: 0.5}, {1: credited, 3: d}, HOTKEYS, HP, RULES)
    assert [u for u, _ in mature.peers] == [1]
    gone = choose_peers(4, {}, {3: d}, {1: "hk1"}, HP, RULES)  # uid 3 no longer standing
    assert gone.peers == ()
    assert d.helps(3.0, 1.0)
    assert not Decision(3, "unproven", gain_z=4.0, evidence_z=0.9).helps(3.0, 1.0)
    assert not Decision(3, "unattributed", gain_z=9.0, evidence_z=1.5).helps(3.0, 1.0)
    small = Decision(4, "unproven", gain=0.01, evidence_z=1.5, gain_z=5.0)
    assert [x.uid for x in helpful_uploads({3: d, 4: small}, RULES)] == [3]


def test_no_member_of_a_near_duplicate_cluster_is_a_fallback_peer():
    """Two unproven uploads of the same content (who copied is not proven): the better-fitting
    one keeps its verdict, but neither may shape the model through the fallback."""
    ev = Evidence()
    m1, m2 = measurement(1, 0.45, seed=5), measurement(2, 0.1, seed=6)
    alone = judge_window({1: m1}, [], Evidence(), RULES)
    assert alone[1].verdict == "unproven" and not alone[1].duplicated
    d = judge_window({1: m1, 2: m2}, [(1, 2)], ev, RULES)
    assert d[1].verdict == "unproven" and d[1].duplicated and d[2].duplicated
    assert "near-duplicate" in str(d[1]) and "near-duplicate" not in str(alone[1])
    gains = {u: dataclasses.replace(x, gain_z=9.0, gain=0.1) for u, x in d.items()}
    solo = {1: dataclasses.replace(alone[1], gain_z=9.0, gain=0.1)}
    assert [x.uid for x in helpful_uploads(solo, RULES)] == [1]
    assert helpful_uploads(gains, RULES) == []


def test_a_young_original_is_never_named_the_copy():
    ev = Evidence()  # uid 2 copied uid 1 and passed the test by chance; uid 1 is still young
    m1, m2 = measurement(1, 0.5, seed=4), measurement(2, 3.0, seed=4)
    d = judge_window({1: m1, 2: m2}, [(1, 2)], ev, RULES)
    assert d[2].credited and d[1].evidence_z > 0
    assert d[1].rejection is None and d[1].verdict == "unattributed"


def test_a_chance_credit_decays_out_of_the_weights():
    board = Scoreboard(alpha=0.3)
    for w in range(12):
        board.update(1, "hk1", 1.0)  # honest, credited every window
        board.update(2, "hk2", 1.0 if w == 0 else 0.0)  # one chance credit, then nothing
        if w == 4:
            assert 2 not in incentive_scores(board.scores)
    board.update(1, "hk1", 0.0)  # an honest window without proof keeps the weight
    assert set(incentive_scores(board.scores)) == {1}


def test_an_excluded_score_neither_earns_weight_nor_sets_the_floor():
    """A miner turned validator keeps its score but is excluded from the weights; its score
    must not raise the floor either (it zeroed the miners below a tenth of it)."""
    scores = {1: 0.9, 2: 0.05, 3: 0.08}
    assert set(incentive_scores(scores)) == {1}  # uid 1 weighted: its score is the best
    assert incentive_scores(scores, exclude={1}) == {2: 0.05, 3: 0.08}


def test_pay_grows_with_the_evidence_so_a_chance_credit_earns_no_weight():
    bar = RULES.z_proof
    assert RULES.pay(bar) == 0.0 and RULES.pay(2 * bar) == 1.0 and RULES.pay(9.0) == 1.0
    assert 0.0 < RULES.pay(bar + 0.3) < 0.15  # where a chance crossing lands
    ev = Evidence()
    for w in range(4):
        d = judge_window({1: measurement(1, 1.0, seed=w)}, [], ev, RULES)
    assert d[1].credited and d[1].pay == RULES.pay(d[1].evidence_z) == 1.0
    # an honest miner with sustained evidence and a non-trainer that crossed the bar by chance
    board = Scoreboard(alpha=0.3)
    for w in range(12):
        late = w >= 9  # the chance credit comes in the last windows, its evidence just above
        honest = Decision(1, "credited", gain=0.02, evidence_z=7.0, pay=RULES.pay(7.0))
        lucky = Decision(2, "credited", gain=0.02, evidence_z=bar + 0.3, pay=RULES.pay(bar + 0.3))
        decisions = {1: honest, 2: lucky if late else Decision(2, "unproven", gain=0.02)}
        for uid, v in window_values(decisions, {}, **PENALTIES).items():
            board.update(uid, f"hk{uid}", v)
    assert set(incentive_scores(board.scores)) == {1}
    # without the ramp the same chance credits would pass the floor: over 0.3 of the best score
    flat = Scoreboard(alpha=0.3)
    for w in range(12):
        flat.update(1, "hk1", 1.0)
        flat.update(2, "hk2", 1.0 if w >= 9 else 0.0)
    assert incentive_scores(flat.scores)[2] > 0.3 * incentive_scores(flat.scores)[1]


def test_gains_within_noise_do_not_pull_the_par_to_zero():
    """Credited uploads whose gain is <= 0 earn 0 and are left out of the par: a majority of
    them must not void the positive gains of the window (the median of all gains would be
    <= 0 here, and every value 0)."""
    window = {
        1: Decision(1, "credited", gain=0.010),
        2: Decision(2, "credited", gain=-0.002),
        3: Decision(3, "credited", gain=-0.001),
    }
    vals = window_values(window, {}, **PENALTIES)
    assert vals == {1: 1.0, 2: 0.0, 3: 0.0}


def _few_pages_dataset(folder, pages: int) -> PageDataset:
    """A byte-level dataset of about ``pages`` training pages (few enough to run out)."""
    tok = ByteTokenizer()
    per_page = HP.data.seqs_per_page * (HP.model.seq_len + 1)
    text = corpus_text()[: int(pages * per_page / (1 - HP.data.heldout_fraction))]
    write_shards(
        [tok.encode(text) + [tok.eot_id]],
        folder,
        vocab_size=tok.vocab_size,
        tokenizer=tok.name,
        shard_tokens=1 << 20,
    )
    return PageDataset(TokenStream(folder), HP)


def test_a_boosted_measurement_adds_sequences_after_the_usual_ones(tmp_path):
    """An undecided upload measured at boost 2: twice the own sequences (its claimed pages
    hold them) and twice the control ones; the usual ones come first and the extra control
    pages are new, unclaimed training pages shared by every boosted upload of the window
    (here fewer are left than asked: every one of them)."""
    ds = _few_pages_dataset(tmp_path, 40)
    assert ds.seqs_per_page >= 2
    model = build_model(HP.model)
    before = [p.detach().clone() for p in model.parameters()]
    ups = [_upload(ds, model, 3, u) for u in (1, 2, 3)]
    claimed = {p for up in ups for p in up.pages}
    free = ds.layout.num_train - len(claimed)
    control = free // 2 + 2  # two draws of this many must overlap unless the second avoids it
    m = Measurer(model, ds, own=2, control=control, salt="v")
    m.begin_window(3, ups, 2.0)
    plain, more = m.measure(ups[0]), m.measure(ups[0], boost=2)
    assert len(plain.own_pages) == 2 and len(more.own_pages) == 4
    assert more.own_pages[:2] == plain.own_pages and set(more.own_pages) <= set(ups[0].pages)
    assert (
        len(plain.control_pages) == control and more.control_pages[:control] == plain.control_pages
    )
    # the extra draw takes every unclaimed page the usual one left (then more sequences of
    # them), never one of the usual sample's
    assert set(more.control_pages) == set(range(ds.layout.num_train)) - claimed
    assert not set(more.control_pages[control:]) & set(plain.control_pages)
    for a, b in [
        (more.own_excess[:2], plain.own_excess),
        (more.control_gain[:control], plain.control_gain),
        (more.control_excess[:control], plain.control_excess),
    ]:
        assert torch.allclose(a, b, atol=1e-6)
    # its cost in unboosted evaluations (what the time budget divides by): forward passes
    assert plain.cost_over_unboosted(2, control) == 1.0
    assert more.cost_over_unboosted(2, control) == (3 * 4 + 2 * 2 * control) / (3 * 2 + 2 * control)
    other = m.measure(ups[1], boost=2)
    assert other.control_pages == more.control_pages  # one boosted control sample per window
    assert m.measure(ups[1], boost=1).control_pages == plain.control_pages
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_shorter_pay_span_pays_in_full_sooner_and_ends_the_boost_there():
    """``pay_span`` (a model knob, scripts/bench_evidence_power.py): full pay at (1 + span) x
    the bar, and the undecided range that is measured more ends where pay is full."""
    short = JudgeRules(pay_span=0.5)
    bar = short.z_proof
    assert short.pay(bar) == 0.0 and short.pay(1.25 * bar) == pytest.approx(0.5)
    assert short.pay(1.5 * bar) == 1.0 and short.z_full_pay == pytest.approx(1.5 * bar)
    assert short.undecided(1.5 * bar - 0.01) and not short.undecided(1.5 * bar)
    none = JudgeRules(pay_span=0.0)  # no ramp: full pay from the bar
    assert none.pay(bar - 0.01) == 0.0 and none.pay(bar) == 1.0
    assert RULES.z_full_pay == pytest.approx(2 * RULES.z_proof)


def test_only_undecided_evidence_is_measured_on_more_sequences():
    """Boost while the evidence leans towards training and pay is not yet full: not below
    ``undecided_from``, not from twice the bar (paid in full) on."""
    bar = RULES.z_proof
    assert not RULES.undecided(0.0) and not RULES.undecided(0.49)
    assert RULES.undecided(0.5) and RULES.undecided(bar) and RULES.undecided(2 * bar - 0.01)
    assert not RULES.undecided(2 * bar) and not RULES.undecided(9.0)
    assert RULES.pay(2 * bar - 0.01) < 1.0 == RULES.pay(2 * bar)
    d = judge_window(
        {1: measurement(1, 0.5), 2: measurement(2, 0.5)}, [], Evidence(), RULES, None, {2}
    )
    assert not d[1].boosted and d[2].boosted and "more sequences" in str(d[2])


def test_the_judges_defaults_are_the_validators():
    """The validator builds its rules from its flags; the rules' own defaults (the benchmarks'
    and models' starting point) must be the same numbers."""
    from template.validator.args import ValidatorConfig

    cfg, rules = ValidatorConfig(), JudgeRules()
    got = (rules.alpha, rules.memory, rules.harm_z, rules.lean_z)
    assert got == (cfg.judge_alpha, cfg.judge_memory, cfg.judge_harm_z, cfg.judge_lean_z)
