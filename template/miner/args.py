"""The miner's command line: the shared node flags plus a few miner-only ones (``MinerFlags``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from template.node.args import add_node_args, check_node_args
from template.node.flags import NON_NEGATIVE, add_settings, check_args, setting


@dataclass(frozen=True)
class MinerFlags:
    """Miner-local settings: they change how fast this node trains, never the math peers see."""

    max_steps: int = setting(
        0,
        "Inner steps per window (0: the preset's train.inner_steps H, the protocol's work "
        "unit; a smaller value trains less and earns less; more than H is refused).",
        NON_NEGATIVE,
        flag="--miner.max-steps",
    )
    micro_batch_size: int = setting(
        0,
        "Split each batch into micro-batches of this many sequences to fit GPU memory (0: no "
        "split). Does not change the math other nodes see.",
        NON_NEGATIVE,
        flag="--miner.micro-batch-size",
    )
    activation_checkpointing: bool = setting(
        False,
        "Recompute each decoder layer in backward (less GPU memory, ~30%% more compute). Used "
        "by the sharded miner under torchrun (docs/multi_gpu.md).",
        flag="--miner.activation-checkpointing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed-miner",
        description=(
            "Train the subnet's shared model on the pages assigned to this hotkey each window, "
            "upload a signed compressed delta to your bucket, and stay in sync with the leader."
        ),
    )
    add_node_args(parser, "miner")
    add_settings(parser, MinerFlags, "miner")
    return parser


def check_miner_args(args: argparse.Namespace) -> None:
    """ConfigError for the first flag that breaks its rule (no heavy imports)."""
    check_node_args(args)
    check_args(MinerFlags, args)
