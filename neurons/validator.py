"""The validator neuron from a checkout: ``python neurons/validator.py --help`` (installed: ``seed-validator``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.commands.validator import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
