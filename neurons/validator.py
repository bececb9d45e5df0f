"""The validator neuron: ``python neurons/validator.py --help`` lists every flag."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.node.entry import run_neuron  # noqa: E402
from template.validator.startup import build_parser  # noqa: E402
from template.validator.startup import run_validator as run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return run_neuron("validator", build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
