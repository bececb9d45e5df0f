"""An optional Prometheus endpoint for a neuron, served by ``prometheus_client``.

Off by default (``--metrics.port 0``); binds 127.0.0.1 unless ``--metrics.host`` says otherwise.
The neurons hand it their status after every window::

    metrics = Metrics.from_args(args, role="miner", hotkey=ss58)  # a no-op object when port is 0
    metrics.set_status(status)   # the status-file dict (or dataclass) of the window just done
    metrics.close()

Every number of the status becomes ``template_<name>``: a counter when the value only grows
(``COUNTERS``: served as ``template_<name>_total``), a gauge otherwise; ``{uid: number}`` maps
(``scores``, ``weights``) become one series per uid; ``rejected`` becomes
``template_uploads_rejected`` and ``template_uploads_rejected_by_code{code=...}``. Every series
carries the node's ``role``, ``netuid`` and ``hotkey`` labels, and the process metrics (CPU,
memory, open files) come along. Values are read from the status at scrape time: a scrape never
touches the event loop the neuron runs on.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

PREFIX = "template_"
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")

# Values that only grow over a node's life: exported as counters.
COUNTERS = frozenset(
    {
        "uploads_done",
        "uploads_missed",
        "windows_behind",
        "weights_set",
        "train_seconds_total",
        "wall_seconds_total",
    }
)

# One-line help for the metrics docs/miner.md and docs/validator.md list (others: generic).
HELP = {
    "window": "Last completed window.",
    "block": "Chain block at the last status update.",
    "loss": "Miner training loss of the last window.",
    "heldout_loss": "Loss of the global model on the validator's fixed held-out sample.",
    "tokens_per_s": "Miner training throughput in tokens per second.",
    "upload_bytes": "Size of the last upload in bytes.",
    "upload_seconds": "Seconds the last upload took.",
    "uploads_done": "Uploads that landed in time.",
    "uploads_missed": "Windows whose upload did not land in time.",
    "windows_behind": "Windows trained without the previous window's aggregate (a late leader).",
    "uploads_seen": "Uploads the validator found in the last window.",
    "uploads_valid": "Uploads of the last window that passed every check.",
    "uploads_rejected": "Uploads of the last window that failed a check.",
    "uploads_rejected_by_code": "Uploads of the last window that failed a check, by reason code.",
    "utilization": "Training time over wall time.",
    "in_sync": "1 when the model matches the leader's fingerprint.",
    "is_leader": "1 when this validator is the leader.",
    "weights_set": "Successful set_weights calls.",
    "train_seconds_total": "Seconds spent training.",
    "wall_seconds_total": "Seconds the node has run.",
    "score": "Validator score of a miner.",
    "weight": "Weight last set for a miner.",
}
_BY_UID = {"scores": "score", "weights": "weight"}  # status map -> metric name


def metric_name(name: str) -> str:
    """``template_<name>`` with anything Prometheus does not allow replaced by ``_``."""
    clean = _NAME_OK.sub("_", str(name))
    if clean[:1].isdigit():
        clean = "_" + clean
    return PREFIX + clean


def _number(v: object) -> float | None:
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class _Values(Collector):
    """The latest values, turned into metric families at scrape time."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.lock = threading.Lock()
        self.plain: dict[str, float] = {}
        self.by_uid: dict[str, tuple[str, dict[str, float]]] = {}
        self.labels = labels

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            plain = dict(self.plain)
            by_uid = {k: (lab, dict(s)) for k, (lab, s) in self.by_uid.items()}
        names, values = list(self.labels), list(self.labels.values())
        for short in sorted(plain):
            family = _family(short, names)
            family.add_metric(values, plain[short])
            yield family
        for short in sorted(by_uid):
            label, series = by_uid[short]
            family = _family(short, [*names, label])
            for key in sorted(series, key=_sort_key):
                family.add_metric([*values, key], series[key])
            yield family


def _family(short: str, labels: list[str]) -> Metric:
    name = metric_name(short)
    doc = HELP.get(short, short.replace("_", " ") + ".")
    if short in COUNTERS:
        return CounterMetricFamily(name, doc, labels=labels)
    return GaugeMetricFamily(name, doc, labels=labels)


def _sort_key(k: str) -> tuple[int, object]:
    return (0, int(k)) if k.isdigit() else (1, k)


class Metrics:
    """Metrics served over HTTP. Use :meth:`start` or :meth:`from_args`; ``Metrics()`` alone is
    a no-op sink."""

    def __init__(self, const_labels: dict[str, object] | None = None) -> None:
        labels = {k: str(v) for k, v in (const_labels or {}).items() if v is not None}
        self._values = _Values({_NAME_OK.sub("_", k): v for k, v in labels.items()})
        self.registry = CollectorRegistry(auto_describe=False)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @classmethod
    def start(cls, port: int, host: str = "127.0.0.1", **const_labels: object) -> Metrics:
        """Serve on ``host:port``; port 0 returns a no-op object. Keyword args become labels on
        every series (``role="miner", netuid=3, hotkey="5F..."``). A busy port logs a warning and
        the node carries on without metrics: observability must never stop a node."""
        m = cls(const_labels)
        if not port:
            return m
        m.registry.register(m._values)
        ProcessCollector(registry=m.registry)
        PlatformCollector(registry=m.registry)
        GCCollector(registry=m.registry)
        try:
            m._server, m._thread = start_http_server(int(port), host, registry=m.registry)
        except OSError as e:
            logger.warning(
                "metrics: could not listen on %s:%s (%s); running without metrics. "
                "Pick a free --metrics.port or 0 to turn them off",
                host,
                port,
                e,
            )
            return m
        m.port = m._server.server_address[1]
        logger.info("metrics: serving Prometheus on http://%s:%d/metrics", host, m.port)
        return m

    @classmethod
    def from_args(cls, args: argparse.Namespace, role: str, hotkey: str | None = None) -> Metrics:
        """``--metrics.port``/``--metrics.host`` with the role, netuid and hotkey labels."""
        return cls.start(
            getattr(args, "metrics_port", 0),
            getattr(args, "metrics_host", "127.0.0.1"),
            role=role,
            netuid=getattr(args, "netuid", None),
            hotkey=hotkey,
        )

    @property
    def enabled(self) -> bool:
        return self._server is not None

    def set(self, **values: object) -> None:
        """Set plain values; ``None`` or non-numeric values are ignored."""
        if not self.enabled:
            return
        with self._values.lock:
            for name, value in values.items():
                f = _number(value)
                if f is not None:
                    self._values.plain[_NAME_OK.sub("_", name)] = f

    def set_by_uid(self, name: str, values: dict[object, object], label: str = "uid") -> None:
        """Replace a labelled family, e.g. scores by uid (keys may be ints or strings)."""
        if not self.enabled:
            return
        series = {str(k): f for k, v in (values or {}).items() if (f := _number(v)) is not None}
        with self._values.lock:
            self._values.by_uid[_NAME_OK.sub("_", name)] = (label, series)

    def set_status(self, status: object) -> None:
        """Export a node's status (a dict or a dataclass): numbers, uid maps, rejections."""
        if not self.enabled:
            return
        if dataclasses.is_dataclass(status) and not isinstance(status, type):
            status = dataclasses.asdict(status)
        assert isinstance(status, dict)
        plain = {}
        for key, value in status.items():
            if key in _BY_UID and isinstance(value, dict):
                self.set_by_uid(_BY_UID[key], value)
            elif key == "rejected" and isinstance(value, dict):
                plain["uploads_rejected"] = len(value)
                codes: dict[str, int] = {}
                for reason in value.values():
                    code = str(reason).split(":", 1)[0].strip() or "unknown"
                    codes[code] = codes.get(code, 0) + 1
                self.set_by_uid("uploads_rejected_by_code", codes, label="code")
            else:
                plain[key] = value
        self.set(**plain)

    def render(self) -> str:
        """The exposition text (also what ``GET /metrics`` returns)."""
        return generate_latest(self.registry).decode()

    def close(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
