"""An optional Prometheus endpoint for a neuron: gauges in the text exposition format.

Off by default (``--metrics.port 0``). The neurons call a tiny API::

    metrics = Metrics.start(args.metrics_port, role="miner")  # a no-op object when port is 0
    metrics.set(window=12, loss=3.41, tokens_per_s=5210.0, upload_bytes=81234)
    metrics.set_by_uid("score", {3: 0.42, 5: 0.17})            # template_score{uid="3"} 0.42
    metrics.close()

Every gauge is exported as ``template_<name>``; ``None`` values are skipped and booleans are 1/0.
The server is the standard library's ``http.server`` in a daemon thread: no new dependency, and a
scrape never touches the event loop the neuron runs on.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

PREFIX = "template_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")

# One-line help for the gauges the neurons are expected to set (others get a generic line).
HELP = {
    "window": "Last completed window.",
    "block": "Chain block at the last status update.",
    "loss": "Miner training loss of the last window.",
    "heldout_loss": "Validator loss of the global model on the held-out sample.",
    "tokens_per_s": "Miner training throughput in tokens per second.",
    "upload_bytes": "Size of the last upload in bytes.",
    "upload_seconds": "Seconds the last upload took.",
    "uploads_done": "Uploads that landed in time.",
    "uploads_missed": "Windows whose upload did not land in time.",
    "utilization": "Training time over wall time.",
    "in_sync": "1 when the model matches the leader's fingerprint.",
    "is_leader": "1 when this validator is the leader.",
    "weights_set": "Successful set_weights calls.",
    "score": "Validator score of a miner.",
    "weight": "Weight last set for a miner.",
}


def metric_name(name: str) -> str:
    """``template_<name>`` with anything Prometheus does not allow replaced by ``_``."""
    clean = _NAME_OK.sub("_", str(name))
    if clean[:1].isdigit():
        clean = "_" + clean
    return PREFIX + clean


def _label_value(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{_NAME_OK.sub("_", k)}="{_label_value(v)}"' for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


def _number(v: object) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f


def _format(f: float) -> str:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return repr(f)


class Metrics:
    """Gauges served over HTTP. Use :meth:`start`; ``Metrics()`` alone is a no-op sink."""

    def __init__(self, const_labels: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._plain: dict[str, float] = {}
        self._by_label: dict[str, tuple[str, dict[str, float]]] = {}
        self._const = {k: str(v) for k, v in (const_labels or {}).items() if v is not None}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @classmethod
    def start(cls, port: int, host: str = "0.0.0.0", **const_labels: str) -> Metrics:
        """Serve on ``host:port``; port 0 returns a no-op object. Keyword args become labels on
        every sample (e.g. ``role="miner", hotkey="5F..."``). A busy port logs a warning and the
        node carries on without metrics: observability must never stop a node."""
        m = cls(const_labels)
        if not port:
            return m
        handler = _handler_for(m)
        try:
            server = ThreadingHTTPServer((host, int(port)), handler)
        except OSError as e:
            logger.warning(
                "metrics: could not listen on %s:%s (%s); running without metrics. "
                "Pick a free --metrics.port or 0 to turn them off",
                host,
                port,
                e,
            )
            return m
        server.daemon_threads = True
        m._server = server
        m.port = server.server_address[1]
        m._thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        m._thread.start()
        logger.info("metrics: serving Prometheus text on http://%s:%d/metrics", host, m.port)
        return m

    @property
    def enabled(self) -> bool:
        return self._server is not None

    def set(self, **gauges: object) -> None:
        """Set plain gauges; ``None`` or non-numeric values are ignored."""
        if not self.enabled:
            return
        with self._lock:
            for name, value in gauges.items():
                f = _number(value)
                if f is not None:
                    self._plain[metric_name(name)] = f

    def set_by_uid(self, name: str, values: dict[object, object], label: str = "uid") -> None:
        """Replace a labelled gauge family, e.g. scores by uid (keys may be ints or strings)."""
        if not self.enabled:
            return
        series: dict[str, float] = {}
        for k, v in (values or {}).items():
            f = _number(v)
            if f is not None:
                series[str(k)] = f
        with self._lock:
            self._by_label[metric_name(name)] = (label, series)

    def render(self) -> str:
        """The exposition text (also what ``GET /metrics`` returns)."""
        lines: list[str] = []
        with self._lock:
            plain = dict(self._plain)
            by_label = {k: (lab, dict(s)) for k, (lab, s) in self._by_label.items()}
        const = _labels(self._const)
        for name in sorted(plain):
            lines += _header(name)
            lines.append(f"{name}{const} {_format(plain[name])}")
        for name in sorted(by_label):
            label, series = by_label[name]
            lines += _header(name)
            for key in sorted(series, key=_sort_key):
                lab = _labels({**self._const, label: key})
                lines.append(f"{name}{lab} {_format(series[key])}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _sort_key(k: str) -> tuple[int, object]:
    return (0, int(k)) if k.isdigit() else (1, k)


def _header(name: str) -> list[str]:
    short = name[len(PREFIX) :]
    return [
        f"# HELP {name} {HELP.get(short, short.replace('_', ' ') + '.')}",
        f"# TYPE {name} gauge",
    ]


def _handler_for(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404, "try /metrics")
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            logger.debug("metrics: " + format, *args)

    return Handler
