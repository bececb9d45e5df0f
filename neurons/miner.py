"""The miner neuron: ``python neurons/miner.py --help`` lists every flag."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.miner.args import build_parser  # noqa: E402
from template.miner.main import run_miner  # noqa: E402
from template.node.errors import StartupError  # noqa: E402
from template.node.logs import setup_logging  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        asyncio.run(run_miner(args))
    except StartupError as e:
        print(f"miner: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
