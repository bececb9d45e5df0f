"""``seed-validator``: the validator neuron (``seed-validator --help`` lists every flag)."""

from __future__ import annotations

import sys

from template.validator.args import build_parser, check_validator_args

from .neuron import Run, run_role


def _run() -> Run:
    import os

    # numpy's OpenBLAS (not torch's MKL) serves the model-free stages' small products; its idle
    # threads spin and made those stages 4x dearer on 2 cores (docs/benchmarks.md, HCOST). Set
    # before numpy loads; an operator's own value wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: docs/multi_gpu.md
        from template.parallel.validator import run_sharded_validator

        return run_sharded_validator
    from template.validator.startup import run_validator

    return run_validator


def main(argv: list[str] | None = None) -> int:
    return run_role("validator", build_parser, check_validator_args, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
