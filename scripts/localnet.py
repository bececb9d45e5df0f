#!/usr/bin/env python
"""The local subnet from a checkout (installed: ``seed-localnet``); ``--help`` lists the flags."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.commands.localnet import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
