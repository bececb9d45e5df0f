#!/usr/bin/env python
"""One command, a whole subnet on this machine: dev chain, local S3, miners and validators.

python scripts/localnet.py                                 # 2 miners, 1 validator, until Ctrl-C
python scripts/localnet.py --miners 3 --validators 2 --windows 6 --plot
python scripts/localnet.py --windows 4 --json              # one JSON summary on stdout

Everything goes under runs/localnet-<time>/ (wallets, node state, logs/ per process). The live
view prints one line per window and per epoch; Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.localnet.config import LocalnetConfig  # noqa: E402
from template.localnet.run import Run  # noqa: E402
from template.localnet.summary import plot_summary  # noqa: E402
from template.localnet.view import summary_text  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--miners", type=int, default=2, help="miner processes (default 2)")
    p.add_argument("--validators", type=int, default=1, help="validator processes (default 1)")
    p.add_argument(
        "--windows", type=int, default=0, help="stop after N windows (default 0: until Ctrl-C)"
    )
    p.add_argument("--hparams", default="tiny", help="preset or TOML file (default tiny)")
    p.add_argument(
        "--block-time", type=float, default=0.5, help="dev chain seconds per block (default 0.5)"
    )
    p.add_argument("--device", default="cpu", help="torch device of every neuron (default cpu)")
    p.add_argument("--run-dir", default=None, help="default runs/localnet-<UTC time>")
    p.add_argument(
        "--dataset",
        choices=("bucket", "path"),
        default="bucket",
        help="bucket: upload the shards to a dataset bucket the neurons sync from (default); "
        "path: give the neurons the local folder",
    )
    p.add_argument("--dataset-path", default=None, help="an already prepared dataset folder")
    p.add_argument("--corpus", default=None, help="text file/folder to prepare instead")
    p.add_argument("--threads", type=int, default=1, help="torch threads per neuron (default 1)")
    p.add_argument(
        "--metrics-port", type=int, default=0, help="node i serves metrics on PORT+i (0: off)"
    )
    p.add_argument("--timeout", type=float, default=0, help="give up after N seconds (0: never)")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    p.add_argument(
        "--plot", nargs="?", const="", default=None, help="write a PNG (default <run>/summary.png)"
    )
    p.add_argument("--log-level", default="INFO", help="the neurons' --log.level")
    p.add_argument(
        "--miner-args",
        default="",
        help='extra flags for the miners: --miner-args="--miner.max-steps 5"',
    )
    p.add_argument(
        "--validator-args",
        default="",
        help='extra flags for the validators: --validator-args="--eval.page-margin 0.1"',
    )
    p.add_argument("--neurons-dir", default=None, help=argparse.SUPPRESS)  # tests: fake neurons
    p.add_argument(
        "neuron_args", nargs="*", help="after --: extra flags for every neuron (e.g. -- --x 1)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "bittensor"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = LocalnetConfig(
            miners=a.miners,
            validators=a.validators,
            windows=a.windows,
            hparams=a.hparams,
            block_time=a.block_time,
            device=a.device,
            dataset=a.dataset,
            dataset_path=Path(a.dataset_path) if a.dataset_path else None,
            corpus=Path(a.corpus) if a.corpus else None,
            timeout=a.timeout,
            metrics_base_port=a.metrics_port,
            threads_per_node=a.threads,
            log_level=a.log_level,
            extra_args=tuple(a.neuron_args),
            miner_args=tuple(shlex.split(a.miner_args)),
            validator_args=tuple(shlex.split(a.validator_args)),
            **({"run_dir": Path(a.run_dir).resolve()} if a.run_dir else {}),
            **({"neurons_dir": Path(a.neurons_dir).resolve()} if a.neurons_dir else {}),
        )
    except ValueError as e:
        print(f"localnet: {e}", file=sys.stderr)
        return 2
    out = sys.stderr if a.json else sys.stdout
    summary = asyncio.run(Run(cfg, out).main())
    run_dir = Path(summary["run_dir"])
    if run_dir.is_dir():
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if a.plot is not None and summary.get("windows") is not None:
        png = plot_summary(summary, Path(a.plot) if a.plot else run_dir / "summary.png")
        summary["plot"] = str(png)
        print(f"plot: {png}", file=out)
    if a.json:
        print(json.dumps(summary))
    elif "nodes" in summary:
        print(summary_text(summary))
    else:
        print(f"local subnet did not start: {summary['stop_reason']}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
