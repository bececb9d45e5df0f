"""The final summary of a local subnet run (one JSON-able dict) and its plot."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .monitor import Tracker
from .setup import Network

logger = logging.getLogger(__name__)

# Status keys copied into each node's entry of the summary (when the node wrote them).
NODE_KEYS = (
    "window",
    "in_sync",
    "fingerprint_ok",
    "applied_through",
    "heldout_loss",
    "loss",
    "tokens_per_s",
    "upload_bytes",
    "upload_seconds",
    "uploads_done",
    "uploads_missed",
    "steps",
    "train_seconds_total",
    "wall_seconds_total",
    "utilization",
    "is_leader",
    "uploads_seen",
    "uploads_valid",
    "scores",
    "weights",
    "weights_set",
    "last_weights_block",
    "eval_seconds_per_upload",
    "rejected",
)


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


def plot_summary(summary: dict[str, Any], path: Path) -> Path:
    """A PNG: held-out loss (and each miner's training loss) by window; incentive by miner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    logging.getLogger("matplotlib").setLevel(logging.WARNING)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    wins = summary["windows"]
    xs = [r["window"] for r in wins if r["heldout_loss"] is not None]
    ys = [r["heldout_loss"] for r in wins if r["heldout_loss"] is not None]
    ax1.plot(xs, ys, "o-", color="black", label="held-out (leader validator)")
    miner_uids = sorted({int(u) for r in wins for u in r["miner_loss"]})
    for uid in miner_uids:
        pts = [
            (r["window"], r["miner_loss"][str(uid)])
            for r in wins
            if r["miner_loss"].get(str(uid)) is not None
        ]
        if pts:
            ax1.plot(*zip(*pts, strict=True), ".--", alpha=0.7, label=f"miner uid {uid} (train)")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("window")
    ax1.set_ylabel("loss (nats/token)")
    ax1.set_title("Loss by window")
    ax1.legend(fontsize=8)
    inc = {int(k): v for k, v in summary["miner_incentive"].items()}
    uids = sorted(inc)
    ax2.bar(range(len(uids)), [inc[u] for u in uids], color="tab:blue")
    ax2.set_xticks(range(len(uids)), [str(u) for u in uids])
    ax2.set_xlabel("miner uid")
    ax2.set_ylabel("incentive")
    ax2.set_title(f"Incentive by miner after {summary['windows_completed']} windows")
    fig.suptitle(
        f"local subnet: {summary['miners']} miners, {summary['validators']} validator(s), "
        f"hparams {summary['hparams']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
