"""A node's status file: one JSON object, rewritten atomically after every window.

The local subnet's live view and summary read these files; operators can `cat` them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


def write_status(state_dir: Path, status: dict[str, Any]) -> None:
    """Atomically replace ``state_dir/status.json`` with ``status`` (+ a timestamp)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATUS_FILE}.tmp"
    tmp.write_text(json.dumps({**status, "updated_at": time.time()}, sort_keys=True))
    os.replace(tmp, state_dir / STATUS_FILE)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last status written, or None (missing or half-written files are not an error)."""
    try:
        return json.loads((Path(state_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
