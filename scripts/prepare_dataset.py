#!/usr/bin/env python
"""Dataset preparation from a checkout (installed: ``seed-prepare-dataset``); see ``--help``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.commands.prepare_dataset import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
