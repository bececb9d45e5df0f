"""How a command refuses bad input: one line ``prog: message`` on stderr, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

USAGE_ERROR = 2


def refuse(prog: str, message: object) -> int:
    """Print ``prog: message`` to stderr and return the exit status of a usage error."""
    print(f"{prog}: {message}", file=sys.stderr)
    return USAGE_ERROR


def first_missing(paths: Iterable[str]) -> str | None:
    """The first of ``paths`` that does not exist, or None."""
    return next((p for p in paths if not Path(p).exists()), None)
