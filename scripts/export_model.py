#!/usr/bin/env python
"""A run's model as a Hugging Face folder, from a checkout (installed: ``seed-export-model``).

python scripts/export_model.py RUN_DIR_OR_CHECKPOINT --out DIR     (--help for the rest)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.commands.export_model import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
