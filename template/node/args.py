"""Command-line flags shared by both neurons, in bittensor's dotted style (``--group.name``).

Each flag is a field of ``NodeFlags``: its help and its rule live there once. Nothing here imports
torch, so ``check_node_args`` reports a bad value within a second of the command starting.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from template.chain.config import add_chain_args

from .flags import NON_NEGATIVE, PORT, ConfigError, Rule, add_settings, check_args, setting
from .logs import add_logging_args

DEFAULT_WALLET_PATH = "~/.bittensor/wallets"
STATE_ROOT = "~/.template"
_PRESETS = ("tiny", "150m", "1b", "8b")  # template.hparams.PRESETS, without importing it
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

HPARAMS = Rule(
    lambda v: v in _PRESETS or Path(v).expanduser().is_file(),
    f"must be a preset ({', '.join(_PRESETS)}) or an existing .toml file",
)
DEVICE = Rule(lambda v: bool(_DEVICE.match(v)), "must be auto, cpu, cuda or cuda:N")
EXISTING_FILE = Rule(lambda v: Path(v).expanduser().is_file(), "must be an existing file")
DATASET_DIR = Rule(
    lambda v: (Path(v).expanduser() / "manifest.json").is_file(),
    "must be a folder holding manifest.json (made by seed-prepare-dataset)",
)
ADDRESS = Rule(lambda v: bool(v.strip()), "must be an address to listen on")


@dataclass(frozen=True)
class NodeFlags:
    """The flags every neuron takes (field name = attribute on the parsed args)."""

    wallet_name: str = setting("default", "Coldkey wallet name (btcli wallet create).")
    wallet_hotkey: str = setting("default", "Hotkey name inside the wallet.")
    wallet_path: str = setting(DEFAULT_WALLET_PATH, "Folder holding the wallets.")
    hparams: str = setting(
        "tiny",
        "Run hyperparameters: a preset (tiny, 150m, 1b, 8b) or a TOML file. Every node of a run "
        "must use the same.",
        HPARAMS,
        flag="--hparams",
    )
    device: str = setting(
        "auto", "Torch device: auto (cuda when available), cpu, cuda or cuda:N.", DEVICE
    )
    state_dir: str | None = setting(
        None, f"Local state folder (default {STATE_ROOT}/<wallet>/<hotkey>/<role>)."
    )
    max_windows: int = setting(
        0, "Stop after this many windows (0: run forever).", NON_NEGATIVE, flag="--run.max-windows"
    )
    storage_config: str | None = setting(
        None,
        "TOML/JSON file with this node's bucket and keys (or TEMPLATE_S3_CONFIG); TEMPLATE_S3_* "
        "environment variables override it (docs/storage.md).",
        EXISTING_FILE,
    )
    allow_private: bool = setting(
        False,
        "Accept peers' buckets on loopback/private addresses (local subnets only).",
        flag="--storage.allow-private",
    )
    dataset_path: str | None = setting(
        None, "A local dataset folder made by seed-prepare-dataset.", DATASET_DIR
    )
    dataset_bucket_config: str | None = setting(
        None,
        "TOML/JSON file naming the dataset bucket (read keys); shards are cached under the "
        "state dir.",
        EXISTING_FILE,
    )
    dataset_prefix: str = setting("v1/datasets/default", "Key prefix of the dataset in its bucket.")
    metrics_port: int = setting(0, "Serve Prometheus metrics on this port (0: off).", PORT)
    metrics_host: str = setting(
        "127.0.0.1",
        "Address the metrics server binds (0.0.0.0 exposes it to the network: firewall it).",
        ADDRESS,
    )


def add_node_args(parser: argparse.ArgumentParser, role: str) -> None:
    """Flags every neuron takes. Secrets never go on the command line: see --storage.config."""
    add_settings(parser, NodeFlags, "node")
    parser.set_defaults(storage_config=os.environ.get("TEMPLATE_S3_CONFIG") or None)
    add_chain_args(parser)
    add_logging_args(parser)


def check_node_args(args: argparse.Namespace) -> None:
    """ConfigError naming the flag, its rule and the value; cheap checks only (no imports)."""
    check_args(NodeFlags, args)
    netuid = getattr(args, "netuid", 0)
    if netuid is None or netuid < 0:
        raise ConfigError(f"--netuid must be >= 0 (got {netuid!r})")


def state_dir(args: argparse.Namespace, role: str) -> Path:
    if args.state_dir:
        return Path(args.state_dir).expanduser()
    return Path(STATE_ROOT).expanduser() / args.wallet_name / args.wallet_hotkey / role


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu`` (imports torch)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
