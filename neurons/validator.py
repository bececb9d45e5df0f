"""The validator neuron: ``python neurons/validator.py --help`` lists every flag."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.node.errors import StartupError  # noqa: E402
from template.node.logs import setup_logging  # noqa: E402
from template.validator.startup import build_parser, run_validator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        asyncio.run(run_validator(args))
    except StartupError as e:
        print(f"validator: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
