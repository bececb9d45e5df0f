"""The miner's command line: the shared node flags plus a few miner-only ones."""

from __future__ import annotations

import argparse

from template.node.args import add_node_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurons/miner.py",
        description=(
            "Train the subnet's shared model on the pages assigned to this hotkey each window, "
            "upload a signed compressed delta to your bucket, and stay in sync with the leader."
        ),
    )
    add_node_args(parser, "miner")
    m = parser.add_argument_group("miner")
    m.add_argument(
        "--miner.max-steps",
        dest="max_steps",
        type=int,
        default=0,
        help="Inner steps per window at most (0: keep training on further assigned pages until "
        "the window ends, the default; hparams train.inner_steps is the protocol's minimum "
        "budget).",
    )
    m.add_argument(
        "--miner.micro-batch-size",
        dest="micro_batch_size",
        type=int,
        default=0,
        help="Split each batch into micro-batches of this many sequences to fit GPU memory "
        "(0: no split). Does not change the math other nodes see.",
    )
    return parser
