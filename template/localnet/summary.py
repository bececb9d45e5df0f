"""The final summary of a local subnet run (one JSON-able dict) and its plot."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from template.node.status import IDENTITY_KEYS, status_keys

from .monitor import Tracker
from .setup import Network

logger = logging.getLogger(__name__)

# Status keys copied into each node's entry of the summary (when the node wrote them).
NODE_KEYS = tuple(k for k in status_keys() if k not in IDENTITY_KEYS)


def build_summary(
    tracker: Tracker,
    net: Network,
    exit_codes: dict[str, int | None],
    exited_early: dict[str, int | None],
    killed: list[str],
    stop_reason: str,
    setup_seconds: float | None,
    wall_seconds: float,
    target_windows: int = 0,
) -> dict[str, Any]:
    last = tracker.last
    statuses = last.statuses if last else {}
    incentive = dict(sorted((last.incentive if last else {}).items()))
    miner_uids = {n.uid for n in net.miners}
    windows = [_str_keys(asdict(tracker.windows[w])) for w in sorted(tracker.windows)]
    losses = [r["heldout_loss"] for r in windows if r["heldout_loss"] is not None]
    nodes = []
    for n in net.nodes:
        st = statuses.get(n.name) or {}
        entry = {"name": n.name, "role": n.role, "uid": n.uid, "hotkey": n.hotkey}
        entry.update({k: st.get(k) for k in NODE_KEYS if k in st})
        entry.update({"exit_code": exit_codes.get(n.name), "log": n.log, "state_dir": n.state_dir})
        nodes.append(entry)
    crashed = sorted(exited_early)  # exited on their own before the run ended
    ok = not crashed and (target_windows == 0 or tracker.windows_completed >= target_windows)
    return {
        "ok": ok and stop_reason in ("windows", "interrupted"),
        "stop_reason": stop_reason,
        "windows_completed": tracker.windows_completed,
        "weights_set": tracker.weights_set(),
        "incentive": {str(uid): v for uid, v in incentive.items()},
        "miner_incentive": {str(uid): v for uid, v in incentive.items() if uid in miner_uids},
        "loss_start": losses[0] if losses else None,
        "loss_end": losses[-1] if losses else None,
        "in_sync": tracker.in_sync(),
        "uploads_missing": tracker.uploads_missing(),
        "uploads_rejected": tracker.uploads_rejected(),
        "seconds_setup": setup_seconds,
        "seconds_to_first_weights": tracker.first_weights_s,
        "wall_seconds": wall_seconds,
        "miners": len(net.miners),
        "validators": len(net.validators),
        "hparams": net.hparams,
        "block_time": net.block_time,
        "run_dir": net.run_dir,
        "chain_url": net.chain_url,
        "s3_endpoint": net.s3_endpoint,
        "crashed": crashed,
        "killed_at_stop": killed,
        "nodes": nodes,
        "windows": windows,
        "epochs": [_str_keys(asdict(e)) for e in tracker.epochs],
    }


def _str_keys(record: dict[str, Any]) -> dict[str, Any]:
    """uid-keyed maps with string keys, as they will read back from JSON."""
    return {
        k: {str(kk): vv for kk, vv in v.items()} if isinstance(v, dict) else v
        for k, v in record.items()
    }


HISTORY_KEYS = (
    "window",
    "seconds",
    "block",
    "heldout_loss",
    "miner_loss",
    "uploads_seen",
    "uploads_valid",
    "rejected",
    "decisions",
    "outer_step",
    "scores",
    "weights",
    "weights_set",
    "incentive",
    "in_sync",
)


def write_history(summary: dict[str, Any], path: Path) -> Path:
    """One JSON line per window (loss, incentive, scores, rejections...), oldest first."""
    lines = [json.dumps({k: rec.get(k) for k in HISTORY_KEYS}) for rec in summary["windows"]]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def read_history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_history(history: Path, png: Path | None = None) -> Path:
    """A PNG beside ``history`` (or at ``png``): loss, incentive and uploads by window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    rows = read_history(history)
    png = png or history.with_name("history.png")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    pts = [(r["window"], r["heldout_loss"]) for r in rows if r["heldout_loss"] is not None]
    if pts:
        ax1.plot(*zip(*pts, strict=True), "o-", color="black", label="held-out (leader)")
    for uid in sorted({int(u) for r in rows for u in r["miner_loss"]}):
        _series(ax1, rows, "miner_loss", uid, ".--", f"miner uid {uid} (train)")
    _axes(ax1, "loss (nats/token)", "Loss by window")
    for uid in sorted({int(u) for r in rows for u in r["incentive"]}):
        _series(ax2, rows, "incentive", uid, "o-", f"uid {uid}")
    _axes(ax2, "incentive", "Incentive by window")
    xs = [r["window"] for r in rows]
    ax3.plot(xs, [r["uploads_seen"] or 0 for r in rows], "o-", label="seen")
    ax3.plot(xs, [r["uploads_valid"] or 0 for r in rows], "s-", label="valid")
    ax3.bar(
        xs, [len(r["rejected"] or {}) for r in rows], color="tab:red", alpha=0.4, label="rejected"
    )
    _axes(ax3, "uploads", "Uploads by window")
    for ax in (ax1, ax2, ax3):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"local subnet history: {history}", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def _series(
    ax: Any, rows: list[dict[str, Any]], key: str, uid: int, style: str, label: str
) -> None:
    pts = [(r["window"], r[key][str(uid)]) for r in rows if r[key].get(str(uid)) is not None]
    if pts:
        ax.plot(*zip(*pts, strict=True), style, alpha=0.8, label=label)


def _axes(ax: Any, ylabel: str, title: str) -> None:
    ax.set_xlabel("window")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
