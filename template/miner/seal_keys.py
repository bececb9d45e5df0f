"""Seal keys a miner has not revealed yet, kept under its state folder: a miner killed or
restarted between its upload and the reveal still publishes the key (the upload counts),
as long as the window's reveal deadline has not passed. One file per window, 32 bytes."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from template.fileio import atomic_write
from template.training.seal import KEY_BYTES

logger = logging.getLogger(__name__)

FOLDER = "seal-keys"


def keep(state_dir: Path, window: int, key: bytes) -> None:
    """Store ``key`` of ``window`` (before the sealed upload is sent)."""
    folder = Path(state_dir) / FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(folder / f"{window}.key", key)


def forget(state_dir: Path, window: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(state_dir) / FOLDER / f"{window}.key").unlink()


def kept(state_dir: Path) -> dict[int, bytes]:
    """window -> key of every stored key (unreadable or foreign files are removed, logged)."""
    folder = Path(state_dir) / FOLDER
    out: dict[int, bytes] = {}
    for path in sorted(folder.glob("*.key")) if folder.is_dir() else []:
        data = path.read_bytes()
        if not path.stem.isdigit() or len(data) != KEY_BYTES:
            logger.warning("ignoring %s: not a seal key this miner wrote", path)
            path.unlink()
            continue
        out[int(path.stem)] = data
    return out
