#!/usr/bin/env python
"""min_compute.yml from a checkout (installed: ``seed-min-compute``): prints unless --write."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.commands.min_compute import main, render  # noqa: E402, F401 - render for tests

if __name__ == "__main__":
    raise SystemExit(main())
