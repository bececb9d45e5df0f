"""The optional Prometheus endpoint: off by default, loopback by default, counters as counters,
the node's labels on every series, process metrics, and survives a busy port."""

from __future__ import annotations

import argparse
import socket
import urllib.request

from template.node.metrics import COUNTERS, Metrics, metric_name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers["Content-Type"], r.read().decode()


def test_port_zero_is_a_noop():
    m = Metrics.start(0)
    assert not m.enabled
    m.set(window=3, loss=1.0)
    m.set_status({"window": 3, "scores": {"1": 0.5}})
    assert "template_" not in m.render()
    m.close()


def test_validator_status_is_exported_with_labels_and_types():
    args = argparse.Namespace(metrics_port=_free_port(), metrics_host="127.0.0.1", netuid=7)
    m = Metrics.from_args(args, role="validator", hotkey="5Fhot")
    try:
        assert m._server.server_address[0] == "127.0.0.1"
        status = {
            "window": 7,
            "heldout_loss": 2.5,
            "in_sync": True,
            "is_leader": False,
            "leader": "5Fother",  # text: skipped
            "uploads_seen": 3,
            "uploads_valid": 2,
            "rejected": {"4": "copy: same as uid 2", "5": "late: after the cut-off"},
            "weights_set": 5,
            "scores": {"3": 0.25, "1": 0.75},
            "weights": {"1": 1.0},
            "fingerprint_ok": None,
        }
        m.set_status(status)
        m.set_status({**status, "scores": {"2": 1.0}})  # replaces the family
        code, ctype, body = _get(m.port)
    finally:
        m.close()
    assert code == 200 and ctype.startswith("text/plain")
    lab = 'hotkey="5Fhot",netuid="7",role="validator"'
    assert f"template_window{{{lab}}} 7.0" in body
    assert f"template_uploads_valid{{{lab}}} 2.0" in body
    assert f"template_uploads_rejected{{{lab}}} 2.0" in body
    assert f'template_uploads_rejected_by_code{{code="copy",{lab}}} 1.0' in body
    assert f"template_in_sync{{{lab}}} 1.0" in body
    assert "# TYPE template_weights_set_total counter" in body
    assert f"template_weights_set_total{{{lab}}} 5.0" in body
    assert "# TYPE template_window gauge" in body
    assert f'template_score{{{lab},uid="2"}} 1.0' in body and 'uid="3"' not in body
    assert f'template_weight{{{lab},uid="1"}} 1.0' in body
    assert "template_leader" not in body and "fingerprint_ok" not in body
    assert "process_cpu_seconds_total" in body  # process metrics come along


def test_every_metric_the_docs_list_is_exported():
    """docs/validator.md and docs/miner.md name metrics; a status with those keys exports each."""
    from tests.conftest import ROOT

    text = (ROOT / "docs/validator.md").read_text() + (ROOT / "docs/miner.md").read_text()
    import re

    named = set(re.findall(r"`(template_[a-z_]+)", text))
    assert {"template_uploads_valid", "template_weights_set_total", "template_loss"} <= named
    m = Metrics.start(_free_port(), role="miner")
    try:
        short = {n.removeprefix("template_") for n in named}
        keys = {
            k.removesuffix("_total") if k.removesuffix("_total") in COUNTERS else k for k in short
        }
        m.set_status({k: 1 for k in keys if k not in ("score", "weight")})
        m.set_status({"scores": {"1": 0.5}, "weights": {"1": 1.0}})
        body = m.render()
    finally:
        m.close()
    missing = [n for n in named if f"\n{n}{{" not in body and f"\n{n}_total{{" not in body]
    assert not missing, missing


def test_busy_port_does_not_raise():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        m = Metrics.start(s.getsockname()[1], host="127.0.0.1")
        assert not m.enabled
        m.set(window=1)


def test_metric_names_are_sanitised():
    assert metric_name("tokens/s") == "template_tokens_s"
    assert metric_name("1x") == "template__1x"


def test_status_dataclasses_are_exported():
    from template.node.status import MinerStatus

    status = MinerStatus(
        role="miner", hotkey="5Fm", uid=2, window=9, block=190, in_sync=True,
        fingerprint_ok=None, applied_through=8, peers_applied=1, loss=3.5, uploads_done=4,
    )  # fmt: skip
    m = Metrics.start(_free_port(), role="miner")
    try:
        m.set_status(status)
        body = m.render()
    finally:
        m.close()
    assert 'template_loss{role="miner"} 3.5' in body
    assert 'template_uploads_done_total{role="miner"} 4.0' in body
    assert 'template_window{role="miner"} 9.0' in body
