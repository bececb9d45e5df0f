"""``seed-localnet``: a whole subnet on this machine (dev chain, local S3, miners, validators).

seed-localnet                                      # 2 miners, 1 validator, until Ctrl-C
seed-localnet --miners 3 --validators 2 --run.max-windows 6 --plot
seed-localnet --run.max-windows 4 --json           # one JSON summary on stdout
seed-localnet --plot runs/localnet-<time>          # redraw the plot of a finished run
seed-localnet node restart miner-1                 # stop/start/restart/status of a running run

Everything goes under runs/localnet-<time>/ (wallets, node state, logs/ per process,
history.jsonl with one line per window, summary.json). Ctrl-C stops every process it started.
Needs moto at run time: pip install 'seed-subnet[localnet]'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from template.commands.usage import refuse
from template.localnet.config import LocalnetConfig
from template.node.flags import ConfigError, add_settings, settings_from_args
from template.node.logs import add_logging_args, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seed-localnet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings(p, LocalnetConfig, "local subnet")
    add_logging_args(p)
    out = p.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="Print the final summary as one JSON object."
    )
    out.add_argument(
        "--plot",
        nargs="?",
        const="",
        default=None,
        metavar="PNG_OR_RUN_DIR",
        help="Draw history.jsonl (loss, incentive, uploads, rejections) to a PNG (default "
        "<run>/history.png). Given a finished run folder, only redraw its plot.",
    )
    p.add_argument(
        "neuron_args", nargs="*", help="After --: extra flags for every neuron (e.g. -- --x 1)."
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:  # seed-localnet node {stop,start,restart,status} NAME: a running run
        from template.localnet.control import node_main

        return node_main(argv[1:])
    a = build_parser().parse_args(argv)
    if a.plot and Path(a.plot).is_dir():
        return _replot(Path(a.plot))
    try:
        cfg = settings_from_args(LocalnetConfig, a)
        cfg = _with(cfg, extra_args=tuple(a.neuron_args), run_dir=cfg.run_dir.resolve())
    except ConfigError as e:
        return refuse("localnet", e)
    setup_logging(cfg.log_level)
    logging.getLogger("bittensor").setLevel(logging.WARNING)
    from template.localnet.run import Run  # bittensor, boto3: after the flags are checked
    from template.localnet.summary import plot_history, write_history
    from template.localnet.view import summary_text

    out = sys.stderr if a.json else sys.stdout
    summary = asyncio.run(Run(cfg, out).main())
    run_dir = Path(summary["run_dir"])
    if run_dir.is_dir():
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        if summary.get("windows") is not None:
            summary["history"] = str(write_history(summary, run_dir / "history.jsonl"))
    if a.plot is not None and summary.get("history"):
        png = plot_history(Path(summary["history"]), Path(a.plot) if a.plot else None)
        summary["plot"] = str(png)
        print(f"plot: {png}", file=out)
    if a.json:
        print(json.dumps(summary))
    elif "nodes" in summary:
        print(summary_text(summary))
    else:
        print(f"local subnet did not start: {summary['stop_reason']}")
    return 0 if summary["ok"] else 1


def _with(cfg: LocalnetConfig, **changes: object) -> LocalnetConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def _replot(run_dir: Path) -> int:
    from template.localnet.summary import plot_history

    history = run_dir / "history.jsonl"
    if not history.is_file():
        return refuse("localnet", f"--plot {run_dir} holds no history.jsonl")
    print(f"plot: {plot_history(history, None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
