"""``seed-validator``: the validator neuron (``seed-validator --help`` lists every flag)."""

from __future__ import annotations

import sys

from template.validator.args import build_parser, check_validator_args

from .neuron import Run, run_role


def _run() -> Run:
    import os

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: docs/multi_gpu.md
        from template.parallel.validator import run_sharded_validator

        return run_sharded_validator
    from template.validator.startup import run_validator

    return run_validator


def main(argv: list[str] | None = None) -> int:
    return run_role("validator", build_parser, check_validator_args, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
