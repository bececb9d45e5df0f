"""``seed-miner``: the miner neuron (``seed-miner --help`` lists every flag)."""

from __future__ import annotations

import sys

from template.miner.args import build_parser, check_miner_args

from .neuron import Run, run_role


def _run() -> Run:
    import os

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: docs/multi_gpu.md
        from template.parallel.miner import run_sharded_miner

        return run_sharded_miner
    from template.miner.main import run_miner

    return run_miner


def main(argv: list[str] | None = None) -> int:
    return run_role("miner", build_parser, check_miner_args, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
