"""Pieces of the local subnet: storage configs, the fallback corpus, the tracker, the summary."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from template.localnet.config import LocalnetConfig
from template.localnet.monitor import Snapshot, Tracker
from template.localnet.setup import Network, NodeSpec, fallback_corpus, plan_nodes, storage_toml
from template.localnet.summary import build_summary, plot_history, read_history, write_history
from template.localnet.view import summary_text, window_line
from template.storage.commitment import decode_commitment_strict, encode_commitment
from template.storage.config import load_storage_config


def test_storage_config_loads_and_its_commitment_fits(tmp_path):
    path = tmp_path / "storage.toml"
    path.write_text(storage_toml("http://127.0.0.1:54321", "localnet-validator-10"))
    cfg = load_storage_config(path, env={})
    assert cfg.write.bucket == "localnet-validator-10" and cfg.read is not None
    data = encode_commitment(cfg.read)
    assert len(data) <= 128
    assert decode_commitment_strict(data, allow_private=True).bucket == "localnet-validator-10"


def test_fallback_corpus_is_text_of_the_asked_size():
    text = fallback_corpus(200_000)
    assert len(text) == 200_000 and "def " in text


def test_plan_nodes_validators_first_with_decreasing_stake(tmp_path):
    nodes = plan_nodes(LocalnetConfig(miners=3, validators=2, run_dir=tmp_path))
    assert [n.name for n in nodes] == [
        "validator-0",
        "validator-1",
        "miner-0",
        "miner-1",
        "miner-2",
    ]
    assert nodes[0].stake > nodes[1].stake > 0 and nodes[2].stake == 0
    assert len({n.bucket for n in nodes}) == 5


def _snap(statuses, block, incentive, rows=1, epoch=0, at=0.0):
    return Snapshot(statuses, block, incentive, rows, epoch, at)


def _tracker():
    return Tracker("validator-0", {"miner-0": 1, "miner-1": 2}, ["validator-0"], t0=0.0)


def test_tracker_records_windows_epochs_and_missing_uploads():
    tr = _tracker()
    v = {"window": 3, "heldout_loss": 5.0, "uploads_seen": 1, "uploads_valid": 1, "in_sync": True}
    m0 = {"window": 3, "loss": 4.0, "uploads_missed": 0, "in_sync": True}
    m1 = {"window": 4, "loss": 4.1, "uploads_missed": 0, "in_sync": True}  # joined a window late
    events = tr.update(_snap({"validator-0": v, "miner-0": m0, "miner-1": m1}, 70, {1: 0.0}, 0))
    assert [k for k, _ in events] == ["window"]
    v2 = {**v, "window": 4, "heldout_loss": 4.5, "uploads_valid": 1, "weights_set": 2}
    events = tr.update(
        _snap({"validator-0": v2, "miner-0": m0, "miner-1": m1}, 90, {1: 0.6, 2: 0.4}, 1, 88, 9.0)
    )
    assert {k for k, _ in events} == {"window", "epoch", "first_weights"}
    assert tr.windows_completed == 2 and tr.first_weights_s == 9.0
    # window 3: only miner-0 expected, 1 seen; window 4: both expected, 1 seen -> 1 missing
    assert tr.uploads_missing() == 1 and tr.uploads_rejected() == 0
    assert tr.weights_set() == 2 and tr.in_sync()
    tr.update(_snap({"validator-0": v2, "miner-0": m0, "miner-1": None}, 91, {}, 1, 88))
    assert not tr.in_sync()  # a node without a status is not in sync


def test_summary_json_plot_and_text(tmp_path):
    tr = _tracker()
    for w, loss in ((1, 5.0), (2, 4.0)):
        v = {
            "window": w,
            "heldout_loss": loss,
            "uploads_valid": 2,
            "weights_set": w,
            "in_sync": True,
            "decisions": {"1": f"uid 1: credited, window {w}", "2": "uid 2: unproven"},
        }
        if w == 2:  # the leader's list had no step: its outer step would raise the loss
            v["outer_step"] = {"peers": [1], "gain": -0.2, "z": -5.0, "applied": False}
        st = {"validator-0": v, "miner-0": {"window": w, "loss": loss, "in_sync": True}}
        st["miner-1"] = {"window": w, "loss": loss + 0.1, "in_sync": True}
        st["miner-1"] |= {"verdicts_window": w - 1, "verdicts": {"5Fxf9biHxyz": "unproven, gain"}}
        tr.update(_snap(st, 20 * w + 5, {0: 0.0, 1: 0.7, 2: 0.3}, 1, 20 * w, float(w)))
    net = Network(str(tmp_path), "http://c", "http://s", 1, 0.5, "tiny")
    net.nodes = [
        NodeSpec("validator-0", "validator", "v", uid=0, log="v.log"),
        NodeSpec("miner-0", "miner", "m0", uid=1, log="m0.log"),
        NodeSpec("miner-1", "miner", "m1", uid=2, log="m1.log"),
    ]
    s = build_summary(
        tr, net, {"validator-0": 0, "miner-0": 0, "miner-1": 0}, {}, [], "windows", 2.0, 30.0, 2
    )
    s = json.loads(json.dumps(s))  # JSON-able, and the plot must work on what JSON gives back
    assert s["ok"] and s["loss_start"] == 5.0 and s["loss_end"] == 4.0
    assert s["miner_incentive"] == {"1": 0.7, "2": 0.3} and s["weights_set"] == 2
    history = write_history(s, tmp_path / "history.jsonl")
    rows = read_history(history)
    assert [r["window"] for r in rows] == [1, 2] and rows[-1]["heldout_loss"] == 4.0
    assert rows[-1]["incentive"] == {"0": 0.0, "1": 0.7, "2": 0.3} and "rejected" in rows[0]
    # each window keeps the leader's verdicts of that window, not the last ones
    assert rows[0]["decisions"] == {"1": "uid 1: credited, window 1", "2": "uid 2: unproven"}
    assert rows[1]["decisions"]["1"] == "uid 1: credited, window 2"
    assert rows[0]["outer_step"] is None and rows[1]["outer_step"]["applied"] is False
    assert "no step" in window_line(tr.windows[2], 2)
    assert "no step" not in window_line(tr.windows[1], 2)
    unchecked = {"peers": [1], "checked": False, "applied": True}  # no time for the check
    assert "step unchecked" in window_line(replace(tr.windows[1], outer_step=unchecked), 2)
    assert "step unchecked" not in window_line(tr.windows[2], 2)
    png = plot_history(history)
    assert png == tmp_path / "history.png" and png.stat().st_size > 5000
    text = summary_text(s)
    assert "held-out loss 5.0000 -> 4.0000" in text
    # each miner's last verdict from each validator, under its line
    assert "window 1, 5Fxf9biH: unproven, gain" in text.split("miner-1")[1]
    crashed = build_summary(
        tr, net, {"miner-0": 1}, {"miner-0": 1}, [], "miner-0 exited with code 1", 2.0, 30.0, 2
    )
    assert not crashed["ok"] and crashed["crashed"] == ["miner-0"]


def test_dataset_falls_back_to_the_standard_library(tmp_path, monkeypatch):
    import template.localnet.setup as setup_mod
    from template.training.shards import parse_manifest

    monkeypatch.setattr(setup_mod, "SHARED_CORPUS", tmp_path / "missing.txt")
    cfg = LocalnetConfig(run_dir=tmp_path / "run", corpus_limit=300_000)
    out = setup_mod.prepare_dataset(cfg, vocab_size=257)
    manifest = parse_manifest((out / "manifest.json").read_text())
    assert manifest.total_tokens >= 300_000  # bytes of the text plus one EOT per document
    with pytest.raises(ValueError, match="vocab_size"):
        setup_mod.prepare_dataset(cfg, vocab_size=32000)


def test_validators_get_the_cores_miners_one_thread_each(monkeypatch):
    from template.localnet import config
    from template.localnet.setup import neuron_env

    monkeypatch.setattr(config, "usable_cores", lambda: 4)
    cfg = LocalnetConfig(miners=3, validators=2)
    assert neuron_env(cfg, "miner")["OMP_NUM_THREADS"] == "1"
    assert neuron_env(cfg, "validator")["OMP_NUM_THREADS"] == "2"  # 4 cores, 2 validators
    assert neuron_env(cfg, "validator", ranks=2)["OMP_NUM_THREADS"] == "1"  # split per rank
    assert neuron_env(cfg, "miner", ranks=2)["OMP_NUM_THREADS"] == "1"
    assert LocalnetConfig(validators=8).threads_of("validator") == 1
    assert LocalnetConfig(validator_threads=3, threads_per_node=2).threads_of("validator") == 3
    assert LocalnetConfig(threads_per_node=2).threads_of("miner") == 2
    assert LocalnetConfig(validator_threads=3).threads_of("validator", ranks=2) == 1


def test_a_container_cpu_quota_caps_the_cores(tmp_path):
    from template.localnet.config import cgroup_cpu_limit

    v2 = tmp_path / "cpu.max"
    v2.write_text("200000 100000\n")
    assert cgroup_cpu_limit(((str(v2), None),)) == 2.0
    v2.write_text("max 100000\n")
    assert cgroup_cpu_limit(((str(v2), None),)) is None
    quota, period = tmp_path / "q", tmp_path / "p"
    quota.write_text("150000\n")
    period.write_text("100000\n")
    assert cgroup_cpu_limit(((str(tmp_path / "absent"), None), (str(quota), str(period)))) == 1.5
    quota.write_text("-1\n")
    assert cgroup_cpu_limit(((str(quota), str(period)),)) is None
    v2.write_text("garbage")
    assert cgroup_cpu_limit(((str(v2), None),)) is None
