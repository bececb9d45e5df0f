"""The incentive benchmark's machinery on a micro run (the rates come from the full run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_eval_cost as eval_cost  # noqa: E402
import bench_fit_statistics as fit_stats  # noqa: E402
import bench_incentives as bench  # noqa: E402
import incentive_sim as sim  # noqa: E402

from template.hparams import load_hparams  # noqa: E402
from template.training.compression import Compressor  # noqa: E402
from template.training.corpus import fallback_corpus  # noqa: E402
from template.training.model import build_model  # noqa: E402
from template.training.wire import decode_upload  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402
from template.validator.measure import Measurement, Measurer  # noqa: E402


def test_micro_run_reports_every_figure_and_pays_no_copier(tiny_dataset, tmp_path):
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    classes = ["same_second_copier", "random", "zero", "replay"]
    run = asyncio.run(bench.simulate(hp, ds, tmp_path, 0, 3, 2, classes))
    assert run["honest_uploads"] == 6 and run["honest_false_rejections"] == 0
    got = run["classes"]
    assert set(got) == {"honest", *classes}
    for k in classes:
        assert got[k]["incentive_share"] == 0.0 and not got[k]["ever_peer"]
    assert got["zero"]["rejected_windows"] == 3  # free rider, every window
    # the replayer's honest first window is not an attack window: its replays (windows 1-2)
    # are rejected before any measurement, so nothing of it counts as measured or credited
    assert got["replay"]["rejected_windows"] == 2
    assert got["replay"]["credited_of_measured"] == [0, 0]
    summary = bench.summarise([run], [], 2.054)
    for key in (
        "honest_uploads",
        "honest_false_rejections",
        "adversary_incentive_share",
        "min_honest_share_of_equal",
        "classes",
        "heldout_loss_with_adversaries",
        "heldout_loss_without_adversaries",
        "targets",
        "null_fit_z",
    ):
        assert key in summary
    assert "incentive_share_second_half_mean" in summary["classes"]["honest"]
    # every target of the issue is reported, the evaluation cost too
    assert set(summary["targets"]) == {
        "zero_honest_false_rejections",
        "honest_at_least_half_equal_share",
        "adversaries_at_most_2pct",
        "adversaries_weight_zero_within_8",
        "lazy_paid_less_than_honest",
        "eval_cost_at_most_10pct",
    }
    assert summary["targets"]["eval_cost_at_most_10pct"] == (summary["eval_cost_share"] <= 0.10)
    # one validator: Yuma pays its weights, so the consensus figures are the leader's, and its
    # trust is 1 once it weights anyone (3 windows may prove nobody yet: then 0, and nobody is
    # paid; the clipping itself: test_consensus_incentive_clips_what_one_validator_of_three_...)
    consensus = run["consensus"]
    weighted = any(c["incentive_share"] > 0 for c in got.values())
    assert consensus["validators"] == 1
    assert consensus["validator_trust"] == [pytest.approx(1.0 if weighted else 0.0)]
    for k, c in got.items():
        assert consensus["classes"][k]["incentive_share"] == pytest.approx(c["incentive_share"])
        assert sum(consensus["classes"][k]["credited_by"]) == c["credited_of_measured"][1]
    assert set(summary["consensus"]["targets"]) == {
        "honest_at_least_half_equal_share",
        "adversaries_at_most_2pct",
        "adversaries_incentive_zero_within_8",
    }


def test_lazy_target_fails_a_run_whose_lazy_miner_out_earns_an_honest_one():
    def run(lazy_final, lazy_later, honest_of_equal=(1.2, 0.9, 0.9), honest_later=0.75):
        return {
            "seed": 0,
            "honest_shares_of_equal": list(honest_of_equal),
            "classes": {
                "honest": {"incentive_share_second_half": honest_later},
                "lazy": {"incentive_share": lazy_final, "incentive_share_second_half": lazy_later},
            },
        }

    assert bench.lazy_paid_less(run(0.07, 0.08)) is True
    # the weakest honest miner holds 0.9 / 3 = 0.3 at the end: a lazy 0.31 out-earns it
    assert bench.lazy_paid_less(run(0.31, 0.08)) is False
    # over the second half an average honest miner held 0.25: a lazy 0.26 out-earns it
    assert bench.lazy_paid_less(run(0.07, 0.26)) is False
    assert bench.lazy_paid_less({"seed": 0, "honest_shares_of_equal": [1.0], "classes": {}}) is None


def test_second_half_shares_average_the_later_windows_and_skip_empty_ones():
    weights = {"honest": [0.0, 9.0, 3.0, 0.0, 1.0], "lazy": [0.0, 1.0, 1.0, 0.0, 0.0]}
    # windows 2..4: shares 0.75 / 0.25, nobody (skipped), 1.0 / 0.0
    assert bench.second_half_shares(weights) == {"honest": 0.875, "lazy": 0.125}
    assert bench.second_half_shares({"honest": [0.0, 0.0]}) == {"honest": 0.0}


def test_fit_statistics_agree_in_sign_and_the_clustered_one_is_the_judges():
    g = torch.Generator().manual_seed(3)
    noise = lambda: torch.randn(36, generator=g, dtype=torch.float64)  # noqa: E731
    pages = tuple(p for _ in range(6) for p in range(6))
    own_excess, ctrl_excess, ctrl_gain = noise() + 1.0, noise(), noise() + 0.5
    m = Measurement(1, 1.0, pages, own_excess, ctrl_excess, ctrl_gain, 3.0)
    own_before = 4.0 + noise().abs()
    own_after = own_before - (own_excess + 0.5)  # the reference gains 0.5 as on control
    stats = fit_stats.statistics_of({"m": m, "own_before": own_before, "own_after": own_after})
    assert stats["clustered"] == m.fit_z
    assert set(stats) == {
        "iid",
        "clustered",
        "clustered_estimated_df",
        "clustered_slope_1",
        "ancova_ref",
        "rank",
        "gain",
    }
    # the two degrees-of-freedom rules differ in the df alone: same sign, close on 6 pages
    assert abs(stats["clustered_estimated_df"] - m.fit_z) < 0.5
    assert all(z > 2.0 for z in stats.values())  # a clear fit shows in every statistic
    null = Measurement(1, 1.0, pages, noise(), noise(), noise(), 3.0)
    flat = fit_stats.statistics_of({"m": null, "own_before": own_before, "own_after": own_before})
    assert abs(flat["iid"]) < 3.0 and abs(flat["clustered"]) < 3.0


def test_eval_cost_counts_what_the_validator_reads_and_the_miner_trains(monkeypatch):
    cfg, hp = ValidatorConfig(), load_hparams("tiny")
    tiny = eval_cost.sequence_counts("tiny", uploads=8)
    own, ctrl, pool = cfg.eval_own_seqs, cfg.eval_control_seqs, cfg.eval_control_pool
    # the control pool's "before" pass is shared by the window's uploads
    assert tiny["eval_seqs_per_upload"] == 3 * own + 2 * ctrl + pool * ctrl / 8
    assert tiny["train_seqs_per_upload"] == hp.train.inner_steps * hp.train.batch_size
    shared = eval_cost.sequence_counts("tiny", uploads=64)
    assert shared["eval_seqs_per_upload"] < tiny["eval_seqs_per_upload"]
    big = eval_cost.sequence_counts("1b", uploads=8)  # same reads, far more training
    assert big["eval_over_train_estimate"] < tiny["eval_over_train_estimate"] / 10
    # an undecided upload: K x the control sample; own ones only as far as the claim holds
    k = cfg.eval_boost
    claim = hp.pages_per_window * hp.data.seqs_per_page
    assert k >= 2 and own < claim < k * own  # tiny: the claim caps the boosted own sample
    assert tiny["eval_seqs_per_boosted_upload"] == 3 * claim + k * (2 * ctrl + pool * ctrl / 8)
    assert big["eval_seqs_per_boosted_upload"] == k * big["eval_seqs_per_upload"]
    # a preset whose whole claim is smaller than the own sample (the small test preset's 16):
    # every count reads only the claim's sequences
    few = hp.replace(**{"train.inner_steps": 1, "train.batch_size": 16})
    small_claim = few.pages_per_window * few.data.seqs_per_page
    assert small_claim < own
    monkeypatch.setattr(eval_cost, "load_hparams", lambda name: few)
    small = eval_cost.sequence_counts("few", uploads=8)
    assert small["eval_seqs_per_upload"] == 3 * small_claim + 2 * ctrl + pool * ctrl / 8
    assert small["eval_seqs_per_boosted_upload"] == 3 * small_claim + k * (
        2 * ctrl + pool * ctrl / 8
    )


def test_eval_seqs_flag_reads_own_and_control_counts_and_refuses_bad_text():
    assert bench.seq_counts("36") == (36, 36) and bench.seq_counts("48,72") == (48, 72)
    for bad in ("x", "3,y", "1,36"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.seq_counts(bad)


def test_set_flag_reads_typed_hparam_overrides_that_the_preset_accepts():
    key, value = bench.hparam_override("data.seqs_per_page=2")
    assert (key, value) == ("data.seqs_per_page", 2)
    assert bench.hparam_override("outer.lr=2.5") == ("outer.lr", 2.5)
    assert bench.hparam_override("outer.method=diloco") == ("outer.method", "diloco")
    assert bench.preset("tiny").replace(**{key: value}).data.seqs_per_page == 2
    for bad in ("seqs_per_page", "=2"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.hparam_override(bad)
    parser = argparse.ArgumentParser()
    for bad in (("data.seqs_per_page", "two"), ("data.pages", 2)):  # bad value, unknown key
        with pytest.raises(SystemExit):  # a usage error naming the key, not a traceback
            bench.overridden(bench.preset("tiny"), [bad], parser)


def test_each_run_seed_starts_from_its_own_model_and_page_draws(tiny_dataset):
    """Two runs at one first window must not train the same model on the same pages."""
    base = bench.preset("small").replace(**{"data.seed": 5})
    assert bench.run_start(base, 0) == base
    one, two = bench.run_start(base, 1), bench.run_start(base, 2)
    assert (two.data.seed, two.model.init_seed) == (7, base.model.init_seed + 2)
    draws = [sim.open_dataset(tiny_dataset, hp).layout.pages(10, 0, 4) for hp in (one, two)]
    assert draws[0] != draws[1]
    w1, w2 = (next(build_model(hp.model).parameters()) for hp in (one, two))
    assert not torch.equal(w1, w2)


def test_dataset_is_built_from_the_corpus_given(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("abc " * 20_000, encoding="utf-8")
    hp = bench.preset("small")
    ds = sim.open_dataset(sim.build_dataset(tmp_path / "ds", corpus=text), hp)
    first = bytes(ds.page(0)[0, :8].tolist())
    assert first == b"abc abc "


def test_stdlib_corpus_is_the_local_subnets_fallback_text(tmp_path):
    """--corpus stdlib: the Python sources a local subnet trains on without shared/data."""
    text = sim.corpus_text(sim.STDLIB, 30_000)
    assert text == fallback_corpus(30_000) and len(text) == 30_000
    hp = bench.preset("small")
    ds = sim.open_dataset(sim.build_dataset(tmp_path / "ds", 30_000, corpus=sim.STDLIB), hp)
    assert bytes(ds.page(0)[0, :16].tolist()) == text[:16].encode()


def test_lazy_mixer_copies_the_largest_share_that_stays_under_its_cosine_bar():
    hp = bench.preset("small")
    gen = torch.Generator().manual_seed(0)
    shapes = {"a": (64, 64), "b": (256,)}
    honest = [{n: torch.randn(s, generator=gen) for n, s in shapes.items()} for _ in range(3)]
    own = sim.recompress({n: torch.randn(s, generator=gen) for n, s in shapes.items()}, hp)
    total = {n: sum(d[n] for d in honest) for n in shapes}
    mixed, c = sim.lazy_mix(own, honest, hp, below=1.01)
    assert c == 1.0
    mixed, c = sim.lazy_mix(own, honest, hp, below=-1.0)
    assert c == 0.0 and mixed is own
    bar = 0.5 * (sim.dense_cosine(own.to_dense(), total) + 1.0)
    mixed, c = sim.lazy_mix(own, honest, hp, below=bar)
    assert c > 0.0 and sim.dense_cosine(mixed.to_dense(), total) < bar


def test_coasting_copier_trains_until_it_coasts_then_copies_its_victim(
    tiny_dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr(bench, "COAST_AFTER", 1)
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    for leaked in (False, True):
        run = bench.Run(hp, ds, tmp_path / str(leaked), 0, 3, [bench.COASTER], leaked_seal=leaked)
        coaster = next(a for a in run.actors if a.kind == bench.COASTER)
        victim = [a for a in run.actors if a.kind == "honest"][2]
        for w in (10, 11):
            asyncio.run(run.window(w))

        def delta(actor, w: int, shapes=run.v.shapes):
            return sim.delta_of_blob(actor.history[w], hp, shapes).tensors

        def same(a, b) -> bool:
            return all(torch.equal(a[n].to_dense(), b[n].to_dense()) for n in b)

        assert not same(delta(coaster, 10), delta(victim, 10))  # its own training
        # from COAST_AFTER on the victim's delta: sealed, the one revealed last window
        now, last = delta(victim, 11), delta(victim, 10)
        assert same(delta(coaster, 11), now if leaked else last)
        assert not same(delta(coaster, 11), last if leaked else now)


def test_older_copier_sends_a_moved_copy_of_an_upload_two_windows_back(tiny_dataset, tmp_path):
    """Opt-in: it reads further back than the last window (which the stale-copy check first
    compared alone)."""
    assert bench.OLDER not in bench.DEFAULT_CLASSES
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, [bench.OLDER])
    copier = next(a for a in run.actors if a.kind == bench.OLDER)
    victim = [a for a in run.actors if a.kind == "honest"][2]
    for w in (10, 11, 12):
        asyncio.run(run.window(w))
    assert set(copier.history) == {12}  # nothing two windows back before window 12

    def support(actor, w: int) -> set[tuple[str, int]]:
        tensors = sim.delta_of_blob(actor.history[w], hp, run.v.shapes).tensors
        return {(n, int(i)) for n, t in tensors.items() for i in t.to_dense().flatten().nonzero()}

    sent = support(copier, 12)
    assert len(sent & support(victim, 10)) >= 0.7 * len(sent)  # 20% of the indices moved
    assert len(sent & support(victim, 11)) < 0.3 * len(sent)


def test_sealed_uploads_leave_same_window_adversaries_nothing_to_copy(tiny_dataset, tmp_path):
    """In the first window nothing is revealed yet: copiers, the aggregator and ALIE upload
    nothing, the mixer its own delta alone; with a leaked seal they all upload."""
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    users = ["same_second_copier", "aggregator", "alie", "lazy_mixer"]
    for leaked in (False, True):
        run = bench.Run(hp, ds, tmp_path / str(leaked), 0, 2, users, leaked_seal=leaked)
        asyncio.run(run.window(10))
        uploaded = {a.kind for a in run.actors if 10 in a.history}
        assert uploaded == ({"honest", *users} if leaked else {"honest", "lazy_mixer"})
        if not leaked:
            assert run.mix_shares["lazy_mixer"] == [0.0]


def test_fit_statistics_refuses_an_unknown_class(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_fit_statistics.py", "--classes", "lazy,bogus"])
    with pytest.raises(SystemExit) as e:
        fit_stats.main()
    assert e.value.code == 2 and "unknown bogus" in capsys.readouterr().err


@pytest.mark.parametrize("script", [bench, fit_stats])
def test_first_window_flag_refuses_a_negative_window(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--first-window", "-1"])
    with pytest.raises(SystemExit) as e:
        script.main()
    assert e.value.code == 2 and "--first-window -1" in capsys.readouterr().err


def test_evidence_power_model_runs_the_judge_and_scoreboard():
    """The power model pays a miner whose evidence is strong and never one without any."""
    import bench_evidence_power as power

    from template.validator.judge import JudgeRules

    rules = JudgeRules(alpha=0.02)
    never = power.run_trials(-1.0, 2.0, 2, 10, rules, 0.3, trials=40, seed=0)["unpaid"]
    always = power.run_trials(3.0, 2.0, 2, 10, rules, 0.3, trials=40, seed=0)["unpaid"]
    weak = power.run_trials(0.7, 2.0, 2, 10, rules, 0.3, trials=400, seed=0)["unpaid"]
    assert never == 1.0 and always == 0.0 and 0.0 < weak < 1.0


def test_evidence_power_model_counts_non_trainers_with_late_weight():
    """Non-trainers (fit z N(0, 1)) hold weight after window 8 in most runs when the test is
    nearly a coin (alpha 0.45), in few at alpha 0.02, and in fewer still behind a higher
    weights floor, while the honest miners stay paid."""
    import bench_evidence_power as power

    from template.validator.judge import JudgeRules

    def late(alpha: float, floor: float) -> dict[str, float]:
        rules = JudgeRules(alpha=alpha)
        return power.run_trials(2.0, 2.0, 3, 16, rules, 0.3, 300, 0, nulls=3, floor=floor)

    coin, strict, floored = late(0.45, 0.1), late(0.02, 0.1), late(0.02, 0.3)
    assert coin["null_late"] > 0.5 > 0.1 > strict["null_late"] > floored["null_late"]
    assert coin["unpaid"] == strict["unpaid"] == floored["unpaid"] == 0.0


def test_evidence_power_model_boost_measures_the_undecided_more():
    """--boost: uids with evidence in [lo, hi) get a trainer's mean times the gain; it proves
    weak honest miners sooner, and the shares of uploads so measured are reported."""
    import bench_evidence_power as power

    from template.validator.judge import JudgeRules

    rules = JudgeRules(alpha=0.005)
    plain = power.run_trials(1.1, 1.1, 3, 15, rules, 0.3, 300, 0, nulls=3)
    more = power.run_trials(1.1, 1.1, 3, 15, rules, 0.3, 300, 0, nulls=3, boost=(0.5, 4.0, 1.41))
    assert more["unpaid"] < plain["unpaid"] and "boosted_miners" not in plain
    assert 0 < more["boosted_miners"] < 1 and 0 < more["boosted_nulls"] < 1
    never = power.run_trials(1.1, 1.1, 3, 15, rules, 0.3, 50, 0, nulls=3, boost=(50, 60, 9.0))
    assert never["boosted_miners"] == never["boosted_nulls"] == 0.0


def test_evidence_power_model_shows_the_pay_span_trade_off():
    """A shorter pay ramp leaves a weak honest miner under half of its equal share less often
    and pays the non-trainers more; ``below_half`` is 1 for a miner that never trains."""
    import bench_evidence_power as power

    from template.validator.judge import JudgeRules

    def run(span: float, mu: float = 1.0) -> dict[str, float]:
        rules = JudgeRules(pay_span=span)
        return power.run_trials(mu, 1.8, 3, 15, rules, 0.3, 400, 0, nulls=3)

    built, short = run(1.0), run(0.25)
    assert short["below_half"] < built["below_half"]
    assert short["null_share"] > built["null_share"] >= 0.0
    assert run(1.0, mu=-1.0)["below_half"] == 1.0


def test_evidence_persistence_finds_a_uid_whose_z_stays_high_and_not_chance(tmp_path, capsys):
    """Crowds of N(0, 1) uids credit about what shuffled ones do (a large p); with one uid per
    run at +0.8 every window the judge's test credits far more than shuffling the windows'
    values among the uids gives (p near 0). Reads benchmark output lines, skipping others."""
    import bench_evidence_persistence as persist

    from template.validator.judge import JudgeRules

    rng = np.random.default_rng(0)
    null = [rng.standard_normal((24, 6)) for _ in range(30)]
    offset = [z + np.array([0.8, 0, 0, 0, 0, 0]) for z in null]
    rules = JudgeRules()
    chance = persist.persistence(null, rules, shuffles=60, seed=1)
    kept = persist.persistence(offset, rules, shuffles=60, seed=1)
    assert chance["runs"] == 30 and chance["uploads"] == 30 * 24 * 6
    assert chance["p"] > 0.05 and kept["p"] < 0.02
    assert kept["credited"] > kept["shuffled_mean"] + 3 * kept["shuffled_sd"]
    doc = {
        "windows": 24,
        "small": {
            "runs": [{"classes": {"wrong_pages": {"fit_z": list(z.ravel())}}} for z in offset[:4]]
        },
    }
    lines = ["a log line", json.dumps(doc)]
    got = persist.class_runs(lines, "wrong_pages")
    assert len(got) == 4 and np.array_equal(got[0], offset[0])
    assert persist.class_runs(lines, "shadow") == []
    f = tmp_path / "runs.jsonl"
    f.write_text("\n".join(lines))
    sys.argv = ["x", str(f), "--class", "shadow"]
    with pytest.raises(SystemExit) as e:
        persist.main()
    assert e.value.code == 2 and "'shadow'" in capsys.readouterr().err
    f.write_text(lines[1][:-5])  # a truncated object
    sys.argv = ["x", str(f)]
    with pytest.raises(SystemExit) as e:
        persist.main()
    assert e.value.code == 2 and "line 1 is not a JSON object" in capsys.readouterr().err
    f.write_text(lines[1])
    sys.argv = ["x", str(f), "--alpha", "1.5"]
    with pytest.raises(SystemExit) as e:
        persist.main()
    assert e.value.code == 2 and "--alpha 1.5" in capsys.readouterr().err


def test_sample_secret_bench_predicts_what_a_public_seed_measures(tiny_dataset):
    """The attackers of bench_sample_secret.py see exactly the control sequences a validator
    seeded with the public value measures, and other ones under a secret."""
    import bench_sample_secret as secret_bench

    hp, cfg = load_hparams("tiny"), ValidatorConfig()
    ds = sim.open_dataset(tiny_dataset, hp)
    model = build_model(hp.model)
    zero = Compressor(hp.compression).compress(
        {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    )
    uploads = [secret_bench.as_upload(zero, 5, uid, ds.layout.pages(5, uid, 6)) for uid in range(4)]
    claims = {p for up in uploads for p in up.pages}
    predicted = secret_bench.predicted_controls(ds, cfg, 5, "public", claims)
    for salt, same in (("public", True), ("a" * 64, False)):
        m = Measurer(model, ds, own=4, control=cfg.eval_control_seqs, salt=salt)
        m.begin_window(5, uploads, 1.0)
        assert torch.equal(m._w.control, predicted) is same


def test_sample_secret_bench_figures_are_ratios_of_means_and_counts():
    import bench_sample_secret as secret_bench

    cfg = ValidatorConfig(judge_alpha=0.02)  # the bar is z(0.98) = 2.054
    rows = {}
    for kind in secret_bench.CLASSES:
        rows[f"{kind}/heldout_change"] = [0.0, 0.0]
        for label in ("public", "secret"):
            rows[f"{kind}/gain_{label}"] = [1.0, 3.0] if kind == "honest" else [4.0, 0.0]
            rows[f"{kind}/harm_z_{label}"] = [-3.5, 0.0]
            rows[f"{kind}/fit_z_{label}"] = [2.1, 2.0]
    got = secret_bench.per_class(rows, cfg)
    assert got["honest"]["public"]["gain_over_honest"] == 1.0
    assert got["control_gamer"]["secret"]["gain_over_honest"] == 1.0  # 2 / 2
    assert got["masked_poison"]["public"]["harm_rejected"] == 1
    assert got["masked_trojan"]["secret"]["fit_z_at_bar"] == 1  # 2.1 >= 2.054 > 2.0


def test_inflated_classes_send_their_trained_delta_times_the_factor(tiny_dataset, tmp_path):
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, ["lazy", *bench.INFLATED], inflate=5.0)
    asyncio.run(run.window(10))

    def norm(kind: str) -> list[float]:
        out = []
        for a in run.actors:
            if a.kind == kind:
                tensors = sim.delta_of_blob(a.history[10], hp, run.v.shapes).tensors.values()
                out.append(sum(float(t.values().pow(2).sum()) for t in tensors) ** 0.5)
        return out

    honest = sorted(norm("honest"))[1]
    assert 2.5 < norm("amplifier")[0] / honest < 10  # an honest window, 5 times over
    assert norm("lazy_inflated")[0] > 2.5 * norm("lazy")[0]
    assert bench.INFLATED[0] in bench.LAZY_KINDS and bench.INFLATED[1] not in bench.LAZY_KINDS
    assert not set(bench.INFLATED) & set(bench.ADVERSARIES)  # real work: judged by their pay


def _record_training(monkeypatch) -> list:
    """The batches of every ``sim.train_from`` call from now on, in call order."""
    trained: list = []
    real = sim.train_from
    monkeypatch.setattr(
        sim,
        "train_from",
        lambda t, g, h, batches, w: trained.append(batches) or real(t, g, h, batches, w),
    )
    return trained


def _rows(batches) -> list[tuple[int, ...]]:
    """The sequences of ``batches``, sorted: what was trained on, whatever the order."""
    return sorted(tuple(r.tolist()) for b in batches for r in b)


def test_shadow_and_poacher_train_their_victims_pages_and_claim_their_own(
    tiny_dataset, tmp_path, monkeypatch
):
    """Opt-in: all train on the first honest miner's (public) pages, shuffled; the poacher on
    its own too (real work); split shadows each on their share of them. Each claims its own
    pages."""
    assert not set(bench.SHADOWS) & set(bench.DEFAULT_CLASSES)
    assert {bench.SHADOW, bench.SPLIT} <= set(bench.ADVERSARIES)
    assert bench.POACHER not in bench.ADVERSARIES
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, [bench.SHADOW, bench.POACHER, bench.SPLIT, bench.SPLIT])
    trained = _record_training(monkeypatch)
    asyncio.run(run.window(10))
    steps = hp.train.inner_steps

    victim = run.actors[0]
    own = {a.kind: sim.window_batches(ds, hp, 10, a.uid, steps)[0] for a in run.actors}
    by_victim = sim.window_batches(ds, hp, 10, victim.uid, steps)[0]
    assert len(trained) == 7  # three honest miners, the shadow, the poacher, two split shadows
    assert _rows(trained[3]) == _rows(by_victim)  # the shadow: its victim's sequences only
    assert _rows(trained[4]) == _rows(by_victim + own[bench.POACHER])
    assert _rows(trained[5]) == _rows(by_victim[0::2])  # the split shadows: half each
    assert _rows(trained[6]) == _rows(by_victim[1::2])
    assert [tuple(map(tuple, b.tolist())) for b in trained[3]] != [
        tuple(map(tuple, b.tolist())) for b in by_victim
    ]  # in its own order: not a byte copy of the victim's training
    shapes = run.v.shapes
    for a in run.actors[3:]:
        up = decode_upload(
            a.history[10],
            max_bytes=1 << 30,
            expected={"uid": a.uid},
            param_shapes=shapes,
            config=hp.compression,
        )
        assert list(up.pages) == ds.layout.pages(10, a.uid, len(up.pages))  # its own claim


def test_the_short_claim_null_trains_a_quarter_on_pages_it_was_not_assigned(
    tiny_dataset, tmp_path, monkeypatch
):
    """Opt-in: the lazy miner's steps on another uid's pages, claiming as many of its own
    (the null of a short claim, whose own variance has few degrees of freedom)."""
    assert bench.SHORT_NULL not in bench.DEFAULT_CLASSES
    assert bench.SHORT_NULL in bench.ADVERSARIES  # does no work on its claim
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, ["lazy", bench.SHORT_NULL])
    trained = _record_training(monkeypatch)
    asyncio.run(run.window(10))
    lazy, null = run.actors[3], run.actors[4]
    quarter = max(1, hp.train.inner_steps // 4)

    assert len(trained) == 5
    assert _rows(trained[4]) == _rows(sim.window_batches(ds, hp, 10, null.uid + 1000, quarter)[0])
    assert _rows(trained[4]) != _rows(sim.window_batches(ds, hp, 10, null.uid, quarter)[0])
    claims = {}
    for a in (lazy, null):
        up = decode_upload(
            a.history[10],
            max_bytes=1 << 30,
            expected={"uid": a.uid},
            param_shapes=run.v.shapes,
            config=hp.compression,
        )
        assert list(up.pages) == ds.layout.pages(10, a.uid, len(up.pages))  # its own claim
        claims[a.kind] = len(up.pages)
    assert claims[bench.SHORT_NULL] == claims["lazy"] < hp.pages_per_window


def test_a_carried_window_is_a_window_from_the_global_model_when_the_aggregate_comes_first(
    tiny_dataset,
):
    """train_carried (--carry-steps) follows training/overlap.py: with the aggregate before
    the first step the window is exactly one trained from the global model; later, the steps
    before it were trained from the previous global model minus the miner's own last delta."""
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    torch.manual_seed(0)
    previous = build_model(hp.model)
    now = build_model(hp.model)  # the global model after the previous window's aggregate
    before = {n: p.detach().clone() for n, p in previous.named_parameters()}
    batches, _ = sim.window_batches(ds, hp, 3, 0, hp.train.inner_steps)
    deltas = {}
    for k in (None, 0, 2):
        t = sim.new_trainee(previous, hp)
        sim.train_carried(t, None, previous, hp, batches, 2, 0)  # window 2: sets ``ahead``
        assert t.overlap.ahead is not None
        if k is None:
            deltas[k] = sim.train_from(t, now, hp, batches, 3).to_dense()
        else:
            deltas[k] = sim.train_carried(t, before, now, hp, batches, 3, k).to_dense()
            assert t.overlap.ahead is not None  # the next window carries this one
    for name in deltas[None]:
        assert torch.allclose(deltas[0][name], deltas[None][name], atol=1e-6), name
    assert any(not torch.allclose(deltas[2][n], deltas[None][n]) for n in deltas[None])


def test_fit_signal_reference_with_the_previous_mean_adds_on_the_union_of_indices():
    import bench_fit_signal as fit_signal

    shapes = {"w": (2, 3)}
    total = {"w": (torch.tensor([0, 4]), torch.tensor([1.0, 2.0]))}
    mean = {"w": (torch.tensor([4, 5]), torch.tensor([0.5, -1.0]))}
    idx, v = fit_signal.with_mean(total, mean, shapes)["w"]
    assert idx.tolist() == [0, 4, 5] and v.tolist() == [1.0, 2.5, -1.0]
    right = torch.tensor([0.0, 0.0, 0.0, 0.0, 10.0])
    assert fit_signal.skewness(right) > 1 > 0 > -1 > fit_signal.skewness(-right)
    assert fit_signal.skewness(torch.zeros(4)) == 0.0


def test_fit_signal_refuses_an_unknown_reference(monkeypatch, capsys):
    import bench_fit_signal as fit_signal

    monkeypatch.setattr(sys, "argv", ["bench_fit_signal.py", "--refs", "loo,median"])
    with pytest.raises(SystemExit):
        fit_signal.main()
    assert "--refs 'loo,median'" in capsys.readouterr().err


def test_fit_signal_null_claims_avoid_every_claimed_and_control_page(tiny_dataset):
    import bench_fit_signal as fit_signal

    hp = sim.preset("tiny")
    ds = sim.open_dataset(tiny_dataset, hp)
    own_pages = [5, 9, 11, 40] * 3  # 12 sequences of 4 pages
    exclude = {5, 9, 11, 40, *range(100, 400)}
    nulls = fit_signal.null_claims(ds, 3, own_pages, 7, "salt", exclude, 3)
    assert len(nulls) == 3
    for pages, seqs in nulls:
        assert len(set(pages)) == 4 and not set(pages) & exclude  # as many pages as the claim
        assert seqs.shape[0] == 12 and len(pages) == 12
    assert nulls[0][0] != nulls[1][0]  # independent draws
    assert fit_signal.null_claims(ds, 3, own_pages, 7, "salt", exclude, 0) == []


def test_fit_skew_reports_each_skewness_and_design(monkeypatch, capsys):
    import json

    import bench_fit_skew as fit_skew

    argv = ["bench_fit_skew.py", "--sigmas", "0.6", "--designs", "8x2", "--draws", "40", "--json"]
    monkeypatch.setattr(sys, "argv", argv)
    fit_skew.main()
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["design"] for r in rows] == ["8x2", "8x2"]
    assert rows[0]["skewness"] > 1 and rows[1]["skewness"] == -rows[0]["skewness"]
    assert all(abs(r["mean_z"]) < 1 and 0 <= r["above_bar"] <= 1 for r in rows)


def test_localnet_decisions_reads_fit_gain_and_harm_from_decision_lines():
    import localnet_decisions as decisions

    credited = "uid 2: credited, gain +0.02576, fit z +2.11, evidence Z +6.87, pay 1.00"
    harmful = (
        "uid 1: rejected (harmful: raises the control-page loss by 0.02727 (-8.9 standard "
        "errors, limit -3.0)), gain -0.02727, fit z +1.34, evidence Z +3.83, more sequences"
    )
    assert decisions.parse(credited) == {"fit_z": 2.11, "harmful": False, "gain": 0.02576}
    assert decisions.parse(harmful) == {"fit_z": 1.34, "harmful": True, "gain": -0.02727}
    assert decisions.parse(None) is None
    summary = {"windows": [{"window": 15, "decisions": {"1": harmful, "2": credited}}]}
    assert decisions.run_decisions(summary, [5, 15]) == {
        15: {"1": decisions.parse(harmful), "2": decisions.parse(credited)}
    }


def test_localnet_decisions_reads_the_runs_preset_beside_its_dataset(tmp_path):
    import localnet_decisions as decisions

    run = tmp_path / "run"
    (run / "dataset").mkdir(parents=True)
    with pytest.raises(SystemExit, match="pass --hparams"):
        decisions.run_hparams(str(run / "dataset"), None)
    (run / "network.json").write_text('{"hparams": "/some/preset.toml"}')
    assert decisions.run_hparams(str(run / "dataset"), None) == "/some/preset.toml"
    assert decisions.run_hparams(str(run / "dataset"), "tiny") == "tiny"


def test_fit_signal_refuses_null_draws_without_per_uid(monkeypatch, capsys):
    import bench_fit_signal as fit_signal

    monkeypatch.setattr(sys, "argv", ["bench_fit_signal.py", "--null-draws", "4"])
    with pytest.raises(SystemExit):
        fit_signal.main()
    assert "add --per-uid" in capsys.readouterr().err


def test_the_validator_measures_against_its_proven_crowd(tiny_dataset, tmp_path, monkeypatch):
    """The loop passes the uids proven before the window as the reference's crowd: here two
    of the honest miners, not the third (unproven) nor the shadow. With two at full-pay
    evidence, only they are; with one proven, the uids whose evidence leans towards a proof
    (lean_z) are."""
    import template.validator.loop as loop

    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, [bench.SHADOW])
    honest = [a.uid for a in run.actors if a.kind == "honest"]
    rules = run.v.judge_rules
    for uid in honest[:2]:  # proven, not at full pay
        run.v.evidence.s[uid], run.v.evidence.v[uid] = rules.z_proof + 0.1, 1.0
    crowds = []
    real = loop.measure_each

    def spy(*args, **kwargs):
        crowds.append(set(args[9] if len(args) > 9 else kwargs["crowd"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "measure_each", spy)
    asyncio.run(run.window(10))
    assert crowds == [set(honest[:2])]

    shadow = next(a.uid for a in run.actors if a.kind == bench.SHADOW)
    full, proof, lean = rules.z_full_pay, rules.z_proof, rules.lean_z
    cases = [  # (evidence of honest[0], honest[1], honest[2], the shadow), the crowd
        ((full + 0.1, lean + 0.1, lean - 0.1, 0.0), set(honest[:2])),  # one proven, one leaning
        ((full + 0.1, full + 0.1, proof + 0.1, proof + 0.1), set(honest[:2])),  # two at full pay
    ]
    for window, (evidence, crowd) in enumerate(cases, start=11):
        for uid, z in zip([*honest, shadow], evidence, strict=True):
            run.v.evidence.s[uid], run.v.evidence.v[uid] = z, 1.0
        asyncio.run(run.window(window))
        assert crowds[-1] == crowd


def test_the_event_loop_runs_while_a_window_is_opened_screened_measured_applied_and_saved(
    tiny_dataset, tmp_path, monkeypatch
):
    """A window's long steps (opening and decoding the uploads, the model-free screen, each
    upload's measurement, the outer step, the leader's documents, the state save) run off the
    event loop, on which the upload watcher polls: starved, it would first see the next
    window's uploads late, and they would be rejected as late. Each step below waits for a
    tick of a task on the loop; on the loop's own thread that tick could not come."""
    import threading

    import template.protocol.window_apply as window_apply
    import template.validator.gather as gather
    import template.validator.leader as leader
    import template.validator.loop as loop

    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, [])
    ticked = threading.Event()
    ticks: list[tuple[str, bool]] = []

    def waits_for_a_tick(name, fn):
        def step(*args, **kwargs):
            ticked.clear()
            ticks.append((name, ticked.wait(5.0)))
            return fn(*args, **kwargs)

        return step

    run.v.measurer.measure = waits_for_a_tick("measure", run.v.measurer.measure)
    run.v.cache.release = waits_for_a_tick("release", run.v.cache.release)
    for module, name in [
        (gather, "unseal_upload"),
        (gather, "decode_checked"),
        (loop, "screen_window"),
        (loop, "clip_factors"),
        (loop, "save_state"),
        (window_apply, "apply_uploads"),
        (leader, "encode_aggregate"),
    ]:
        monkeypatch.setattr(module, name, waits_for_a_tick(name, getattr(module, name)))

    async def window() -> None:
        async def ticker() -> None:
            while True:
                ticked.set()
                await asyncio.sleep(0.001)

        task = asyncio.ensure_future(ticker())
        try:
            await run.window(10)
        finally:
            task.cancel()

    asyncio.run(window())
    names = [n for n, _ in ticks]
    assert names.count("measure") == 3
    assert names.count("unseal_upload") == names.count("decode_checked") == 3
    assert {"screen_window", "clip_factors", "release", "save_state"} <= set(names)
    assert {"apply_uploads", "encode_aggregate"} <= set(names)
    assert all(ok for _, ok in ticks), ticks


def test_several_validators_follow_the_leader_each_with_its_own_sample(tiny_dataset, tmp_path):
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 3, [], validators=3)
    assert len({v.hotkey for v in run.vs}) == 3 and run.v is run.vs[0]

    async def three_windows() -> list[list[dict[int, float]]]:
        fits = []  # per window, each validator's fit z per uid
        for w in (10, 11, 12):
            reports = [await run.window(w), *run.reports[1:]]
            assert [r.leader for r in reports] == [run.v.hotkey] * 3
            assert [r.is_leader for r in reports] == [True, False, False]
            fits.append([{u: d.fit_z for u, d in r.decisions.items()} for r in reports])
        return fits

    fits = asyncio.run(three_windows())
    # the followers applied the leader's aggregate: one model on every validator
    for v in run.vs[1:]:
        assert v.in_sync
        for (name, a), (_, b) in zip(
            run.v.model.state_dict().items(), v.model.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), name
    # ... but each measured the uploads on its own secret sample of sequences
    last = fits[-1]
    assert last[0].keys() == last[1].keys() == last[2].keys()
    assert last[0] != last[1] and last[0] != last[2]


def test_consensus_incentive_clips_what_one_validator_of_three_pays_alone(tiny_dataset, tmp_path):
    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = bench.Run(hp, ds, tmp_path, 0, 2, ["random"], validators=3)
    agree = {0: 0.5, 1: 0.5}
    for v, weights in zip(run.vs, (agree, agree, {0: 0.4, 1: 0.4, 2: 0.2}), strict=True):
        v.state.weights = weights
    incentive, trust = bench.consensus_incentive(run)
    assert incentive[2] == 0.0  # the random miner: paid by one validator of three
    assert incentive[0] == pytest.approx(0.5) and incentive[1] == pytest.approx(0.5)
    assert trust[0] == pytest.approx(1.0) and trust[2] == pytest.approx(0.8)
    # one validator: Yuma pays its normalised weights
    alone = bench.Run(hp, ds, tmp_path / "one", 0, 2, ["random"])
    alone.v.state.weights = {0: 0.2, 1: 0.6, 2: 0.2}
    incentive, trust = bench.consensus_incentive(alone)
    assert [incentive[u] for u in (0, 1, 2)] == pytest.approx([0.2, 0.6, 0.2])
    assert trust == [pytest.approx(1.0)]


def test_validators_flag_refuses_fewer_than_one(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_incentives.py", "--validators", "0"])
    with pytest.raises(SystemExit) as e:
        bench.main()
    assert e.value.code == 2 and "--validators 0: must be >= 1" in capsys.readouterr().err


def test_control_pool_flag_refuses_fewer_than_one(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_incentives.py", "--control-pool", "0"])
    with pytest.raises(SystemExit) as e:
        bench.main()
    assert e.value.code == 2 and "--control-pool 0: must be at least 1" in capsys.readouterr().err


def test_a_traced_run_replays_to_its_recorded_values_and_shares(
    tiny_dataset, tmp_path, monkeypatch
):
    """``--trace`` keeps what the score stage saw; folding it again on the same code gives the
    recorded values and pay, and a changed score rule shows in the replay."""
    import replay_scores as replay

    hp = bench.preset("small")
    ds = sim.open_dataset(tiny_dataset, hp)
    run = asyncio.run(bench.simulate(hp, ds, tmp_path, 0, 3, 2, ["lazy", "random"], trace=True))
    trace = run["trace"]
    assert len(trace["windows"]) == 3 and set(trace["kinds"].values()) == {
        "honest",
        "lazy",
        "random",
    }
    assert trace["rate_memory"] == 8 and trace["pay_span"] == 1.0  # the validator's defaults
    run = json.loads(json.dumps(run))  # as read back from a file
    got = replay.replay_run(run)
    assert got["values_max_diff"] == 0.0
    # (three windows may weight nobody yet; the weights path: the hand-made trace below)
    for k, c in run["classes"].items():
        assert got["classes"][k]["incentive_share"] == pytest.approx(c["incentive_share"])
        assert got["classes"][k]["incentive_share_second_half"] == pytest.approx(
            c["incentive_share_second_half"]
        )
    # another score rule shows as a difference from the recorded values
    real = replay.window_values
    monkeypatch.setattr(
        replay, "window_values", lambda *a, **kw: {u: v + 0.5 for u, v in real(*a, **kw).items()}
    )
    assert replay.replay_run(run)["values_max_diff"] == pytest.approx(0.5)
    del run["trace"]
    with pytest.raises(replay.TraceError, match="--trace"):
        replay.replay_run(run)


def test_replay_weights_follow_the_scores_of_a_hand_made_trace():
    """Two windows in which honest uid 0 gains twice what honest uid 1 gains and the lazy uid 2
    is unproven: values 1 and 0.5 (par: the larger gain), EMA scores 0.51 and 0.255, so the
    honest miners hold 2/3 and 1/3 of the weights."""
    import replay_scores as replay

    window = {
        "decisions": {
            "0": ["credited", None, 0.02, 1.0, 1.0, 2.0, 3.0],
            "1": ["credited", None, 0.01, 1.0, 1.0, 2.0, 3.0],
            "2": ["unproven", None, 0.01, 0.25, 1.0, 0.0, 0.0],
        },
        "rejected": {},
        "missing": [],
        "values": {"0": 1.0, "1": 0.5, "2": 0.0},
    }
    trace = {
        "score_alpha": 0.3,
        "invalid_penalty": 1.0,
        "missing_penalty": 0.25,
        "kinds": {"0": "honest", "1": "honest", "2": "lazy"},
        "windows": [window, window],
    }
    got = replay.replay_run({"seed": 0, "trace": trace})
    assert got["values_max_diff"] == 0.0
    assert got["min_honest_share_of_equal"] == pytest.approx(2 / 3)
    assert got["classes"]["honest"]["incentive_share"] == pytest.approx(1.0)
    assert got["classes"]["lazy"]["incentive_share"] == 0.0
    window["values"]["1"] = 0.4  # a recorded value this code does not give
    assert replay.replay_run({"seed": 0, "trace": trace})["values_max_diff"] == pytest.approx(0.1)


def test_replay_refuses_a_file_that_is_not_a_trace(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "runs.json"
    bad.write_text(json.dumps({"small": {"runs": [{"seed": 0}]}}))
    import replay_scores as replay

    monkeypatch.setattr(sys, "argv", ["replay_scores.py", str(bad)])
    with pytest.raises(SystemExit):
        replay.main()
    assert "record it with --trace" in capsys.readouterr().err
    lines = tmp_path / "runs.jsonl"  # a line that is not a benchmark object
    lines.write_text("[1, 2]\n")
    monkeypatch.setattr(sys, "argv", ["replay_scores.py", str(lines)])
    with pytest.raises(SystemExit):
        replay.main()
    assert "not a benchmark trace" in capsys.readouterr().err


def test_replay_can_pay_recorded_evidence_on_another_pay_ramp():
    """Two honest uids with the same gain, one far above the bar (Z 5: pay 1) and one just
    over it (Z 2.9: pay 0.25 on the default ramp). Replayed on the recorded ramp the second
    holds a fifth of the weights; paid in full at the bar (span 0) both hold half."""
    import replay_scores as replay

    from template.validator.judge import JudgeRules

    low = JudgeRules().pay(2.9)
    window = {
        "decisions": {
            "0": ["credited", None, 0.02, 1.0, 1.0, 2.0, 5.0],
            "1": ["credited", None, 0.02, 1.0, low, 1.0, 2.9],
        },
        "rejected": {},
        "missing": [],
        "values": {"0": 1.0, "1": low},
    }
    trace = {
        "judge_alpha": 0.01,
        "score_alpha": 0.3,
        "invalid_penalty": 1.0,
        "missing_penalty": 0.25,
        "kinds": {"0": "honest", "1": "honest"},
        "windows": [window, window],
    }
    run = {"seed": 0, "trace": trace}
    recorded = replay.replay_run(run)
    assert recorded["values_max_diff"] == 0.0
    assert recorded["min_honest_share_of_equal"] == pytest.approx(2 * low / (1 + low))
    assert replay.replay_run(run, pay_span=1.0) == recorded  # the recorded ramp
    full = replay.replay_run(run, pay_span=0.0)
    assert full["min_honest_share_of_equal"] == pytest.approx(1.0)
    assert full["values_max_diff"] == pytest.approx(1 - low)
    window["decisions"]["1"][0] = "unproven"  # an unproven upload earns nothing on any ramp
    window["values"]["1"] = 0.0
    assert replay.replay_run(run, pay_span=0.0)["min_honest_share_of_equal"] == 0.0


def test_an_honest_miners_full_work_share_counts_every_uid_that_does_a_full_windows_work():
    """An amplifier and a poacher each train a full window of their own pages and are paid
    for it: beside them, two honest miners holding a quarter of the weights each hold half of
    issue 15's equal share (1 / honest miners) and all of the full-work one (1 / 4). A lazy
    miner and an adversary are counted in neither."""
    kinds = {0: "honest", 1: "honest", 2: "amplifier", 3: "poacher", 4: "lazy", 5: "copier"}
    last = {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25, 4: 0.0, 5: 0.0}
    series = {k: [sum(v for u, v in last.items() if kinds[u] == k)] for k in set(kinds.values())}
    got = bench.pay_figures(series, last, kinds, "windows_to_weight_zero")
    assert got["honest_shares_of_equal"] == pytest.approx([0.5, 0.5])
    assert got["min_honest_share_of_equal"] == pytest.approx(0.5)
    assert got["min_honest_share_of_full_work_equal"] == pytest.approx(1.0)
    del kinds[2], kinds[3], series["amplifier"], series["poacher"]
    alone = bench.pay_figures(series, {0: 0.25, 1: 0.25}, kinds, "windows_to_weight_zero")
    assert alone["min_honest_share_of_equal"] == pytest.approx(1.0)  # half the weights each
    assert alone["min_honest_share_of_full_work_equal"] == pytest.approx(1.0)
