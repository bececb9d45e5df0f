"""Command-line flags shared by both neurons, in bittensor's dotted style."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from template.chain.config import add_chain_args

DEFAULT_WALLET_PATH = "~/.bittensor/wallets"


def add_node_args(parser: argparse.ArgumentParser, role: str) -> None:
    """Flags every neuron takes. Secrets never go on the command line: see --storage.config."""
    w = parser.add_argument_group("wallet")
    w.add_argument(
        "--wallet.name",
        dest="wallet_name",
        default="default",
        help="Coldkey wallet name (btcli wallet create).",
    )
    w.add_argument(
        "--wallet.hotkey",
        dest="wallet_hotkey",
        default="default",
        help="Hotkey name inside the wallet.",
    )
    w.add_argument(
        "--wallet.path",
        dest="wallet_path",
        default=DEFAULT_WALLET_PATH,
        help="Folder holding wallets (default ~/.bittensor/wallets).",
    )

    add_chain_args(parser)

    r = parser.add_argument_group("run")
    r.add_argument(
        "--hparams",
        default="tiny",
        help="Run hyperparameters: a preset (tiny, 150m, 1b, 8b) or a TOML file. Every node of a run must use the same.",
    )
    r.add_argument(
        "--device",
        default="cuda" if _cuda() else "cpu",
        help="Torch device: cpu, cuda or cuda:N (default: cuda when available).",
    )
    r.add_argument(
        "--state.dir",
        dest="state_dir",
        default=None,
        help=f"Local state folder (default ~/.template/<wallet>/<hotkey>/{role}).",
    )
    r.add_argument(
        "--max-windows",
        dest="max_windows",
        type=int,
        default=0,
        help="Stop after this many windows (0: run forever).",
    )

    s = parser.add_argument_group("storage")
    s.add_argument(
        "--storage.config",
        dest="storage_config",
        default=os.environ.get("TEMPLATE_S3_CONFIG"),
        help="TOML/JSON file with this node's bucket and keys; TEMPLATE_S3_* environment variables override it (docs/storage.md).",
    )
    s.add_argument(
        "--storage.allow-private",
        dest="allow_private",
        action="store_true",
        help="Accept peers' buckets on loopback/private addresses (local subnets only).",
    )

    d = parser.add_argument_group("dataset")
    d.add_argument(
        "--dataset.path",
        dest="dataset_path",
        default=None,
        help="A local folder prepared by scripts/prepare_dataset.py.",
    )
    d.add_argument(
        "--dataset.bucket-config",
        dest="dataset_bucket_config",
        default=None,
        help="TOML/JSON file naming the dataset bucket (read keys); shards are cached under the state dir.",
    )
    d.add_argument(
        "--dataset.prefix",
        dest="dataset_prefix",
        default="v1/datasets/default",
        help="Key prefix of the dataset in its bucket.",
    )

    o = parser.add_argument_group("observability")
    o.add_argument(
        "--metrics.port",
        dest="metrics_port",
        type=int,
        default=0,
        help="Serve Prometheus metrics on this port (0: off).",
    )
    o.add_argument(
        "--log.level", dest="log_level", default="INFO", help="DEBUG, INFO, WARNING or ERROR."
    )


def state_dir(args: argparse.Namespace, role: str) -> Path:
    if args.state_dir:
        return Path(args.state_dir).expanduser()
    return Path("~/.template").expanduser() / args.wallet_name / args.wallet_hotkey / role


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False
