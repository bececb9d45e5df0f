"""The live status view: one line per window, one per epoch, printed as they happen."""

from __future__ import annotations

from typing import Any

from .monitor import EpochRecord, WindowRecord


def _uids(d: dict[int, float], fmt: str = "{:.3f}") -> str:
    if not d:
        return "-"
    return " ".join(f"{uid}:{fmt.format(v)}" for uid, v in sorted(d.items()))


def _num(v: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if v is None else fmt.format(v)


def window_line(rec: WindowRecord, n_miners: int) -> str:
    synced = sum(1 for v in rec.in_sync.values() if v)
    seen = "-" if rec.uploads_seen is None else str(rec.uploads_seen)
    valid = "-" if rec.uploads_valid is None else str(rec.uploads_valid)
    return (
        f"window {rec.window:>4} | {rec.seconds:6.1f}s block {rec.block:>5} | "
        f"held-out loss {_num(rec.heldout_loss)} | uploads {valid}/{seen} valid/seen "
        f"({n_miners} miners) | scores {_uids(rec.scores)} | weights set {rec.weights_set} | "
        f"incentive {_uids(rec.incentive)} | in sync {synced}/{len(rec.in_sync)}"
        + _step_note(rec.outer_step)
    )


def _step_note(step: dict | None) -> str:
    """The leader's step check, when it changed or skipped something: no step published (it
    would raise the control loss), or a step published unchecked (no time to check it)."""
    if step is None:
        return ""
    if step.get("applied") is False:
        return " | no step: it would raise the loss"
    if step.get("checked") is False:
        return " | step unchecked: no time"
    return ""


def epoch_line(rec: EpochRecord) -> str:
    return f"epoch at block {rec.block} ({rec.seconds:.1f}s): incentive {_uids(rec.incentive)}"


def event_line(kind: str, payload: Any, n_miners: int) -> str:
    if kind == "window":
        return window_line(payload, n_miners)
    if kind == "epoch":
        return epoch_line(payload)
    if kind == "first_weights":
        return f"first weights on chain {payload:.1f}s after start"
    return f"{kind}: {payload}"


def summary_text(s: dict[str, Any]) -> str:
    """The final summary as a few readable lines."""
    lines = [
        "",
        f"local subnet finished ({s['stop_reason']}): {s['windows_completed']} windows, "
        f"{s['wall_seconds']:.0f}s, run folder {s['run_dir']}",
        f"  held-out loss {_num(s['loss_start'])} -> {_num(s['loss_end'])}; "
        f"weights set {s['weights_set']}; first weights after "
        f"{_num(s['seconds_to_first_weights'], '{:.1f}')}s",
        f"  uploads missing {s['uploads_missing']}, rejected {s.get('uploads_rejected')}; "
        f"all nodes in sync: {s['in_sync']}",
        f"  incentive by uid: {_uids({int(k): v for k, v in s['incentive'].items()})}",
    ]
    for n in s["nodes"]:
        extra = (
            f"uploads {n.get('uploads_done')} done / {n.get('uploads_missed')} missed, "
            f"{n.get('windows_behind', 0)} trained behind, loss {_num(n.get('loss'))}"
            if n["role"] == "miner"
            else f"weights set {n.get('weights_set')}, leader {n.get('is_leader')}"
        )
        lines.append(
            f"  {n['name']:<12} uid {n['uid']:>2} window {n.get('window')} in_sync "
            f"{n.get('in_sync')} | {extra} | exit {n.get('exit_code')} | log {n['log']}"
        )
        for hotkey, verdict in sorted((n.get("verdicts") or {}).items()):
            # what each validator decided on this miner's last judged upload, and why
            lines.append(f"{'':17}window {n.get('verdicts_window')}, {hotkey[:8]}: {verdict}")
    return "\n".join(lines)
