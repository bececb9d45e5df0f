"""The miner neuron: ``python neurons/miner.py --help`` lists every flag."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.miner.args import build_parser  # noqa: E402
from template.miner.main import run_miner as run  # noqa: E402
from template.node.entry import run_neuron  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return run_neuron("miner", build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
