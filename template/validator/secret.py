"""The validator's sampling secret: what makes its samples unpredictable to miners.

Which own and control sequences a validator measures (``measure.py``) and how it hashes
uploads for the copy and mix checks (``copies.window_salt``) are seeded from this secret.
Seeded from public facts only (the validator's hotkey and the window, as before 2026-12-04),
a miner could compute the sample before uploading and game it: train on just the measured
own sequences (a proof at a fraction of the work), memorise the control sequences (a larger
paid gain, and a harmful upload that looks helpful: scripts/bench_sample_secret.py), or
shape a mix so that it misses the sketches.

The secret is 32 random bytes, made on the first start and kept in the state dir
(``sample_secret``, mode 0600) so a restarted validator keeps its samples. It is never
published; nothing another node checks depends on it (peers and aggregates do not).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

SECRET_FILE = "sample_secret"
_FORMAT = re.compile(r"[0-9a-f]{64}")


def load_or_create_secret(state_dir: Path) -> str:
    """The secret kept in ``state_dir`` (64 hex digits); a new one when absent or unreadable."""
    path = Path(state_dir) / SECRET_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as e:
        logger.warning("cannot read the sampling secret %s (%s); making a new one", path, e)
        text = None
    if text is not None:
        if _FORMAT.fullmatch(text):
            return text
        logger.warning("sampling secret %s is not 64 hex digits; making a new one", path)
    secret = write_secret(path, secrets.token_hex(32))
    logger.info("made a new sampling secret in %s (keep it private; it survives restarts)", path)
    return secret


def write_secret(path: Path, secret: str) -> str:
    """Store ``secret`` at ``path`` readable by the owner only (written aside, then renamed)."""
    if not _FORMAT.fullmatch(secret):
        raise ValueError("a sampling secret is 64 lower-case hex digits")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(tmp, 0o600)  # an older tmp file keeps its mode through O_CREAT
    os.replace(tmp, path)
    return secret
