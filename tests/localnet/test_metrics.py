"""The optional Prometheus endpoint: off by default, serves gauges, survives a busy port."""

from __future__ import annotations

import socket
import urllib.request

from template.node.metrics import Metrics, metric_name


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
    m.set_by_uid("score", {1: 0.5})
    assert m.render() == "\n"
    m.close()


def test_serves_gauges_and_labelled_families():
    m = Metrics.start(_free_port(), host="127.0.0.1", role="validator")
    try:
        m.set(window=7, loss=2.5, in_sync=True, heldout_loss=None, junk="not a number")
        m.set_by_uid("score", {3: 0.25, 1: 0.75})
        m.set_by_uid("score", {2: 1.0})  # replaces the family
        status, ctype, body = _get(m.port)
    finally:
        m.close()
    assert status == 200 and ctype.startswith("text/plain")
    assert 'template_window{role="validator"} 7.0' in body
    assert 'template_loss{role="validator"} 2.5' in body
    assert 'template_in_sync{role="validator"} 1.0' in body
    assert "heldout_loss" not in body and "junk" not in body
    assert 'template_score{role="validator",uid="2"} 1.0' in body
    assert 'uid="3"' not in body
    assert "# TYPE template_score gauge" in body


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
