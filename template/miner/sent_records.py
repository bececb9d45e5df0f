"""What an upload took out of error feedback, kept under the state folder from before its PUT
until the window's state is saved. A miner stopped between the two restarts with the error
feedback of an earlier window, which still holds those entries: the record names them, and the
restart clears them (zero), so they are not sent a second time.

One file per window, ``sent/<window>.sent``: a safetensors file of each tensor's flat
indices (int32, or int64 past 2^31 values), with the window and each tensor's size in its
metadata. Indices only, no values; nothing is unpickled. A file that does not parse, or names
tensors the model does not have, is logged and removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from template.fileio import atomic_write

logger = logging.getLogger(__name__)

FOLDER = "sent"
SUFFIX = ".sent"
FORMAT = "1"


@dataclass(frozen=True)
class SentRecord:
    window: int
    indices: dict[str, np.ndarray]  # flat int64 indices by tensor name

    @property
    def count(self) -> int:
        return sum(int(i.size) for i in self.indices.values())


class RecordError(ValueError):
    """Not a record this miner wrote (or one for another model)."""


def _path(state_dir: Path, window: int) -> Path:
    return Path(state_dir) / FOLDER / f"{window}{SUFFIX}"


def encode(window: int, sent) -> bytes:
    """The file of ``sent`` (a ``CompressedDelta``: its tensors' sizes and flat indices)."""
    arrays, numels = {}, {}
    for name, t in sent.tensors.items():
        dtype = np.int32 if t.numel < 2**31 else np.int64
        arrays[name] = t.indices.detach().to("cpu").numpy().astype(dtype, copy=False)
        numels[name] = int(t.numel)
    meta = {"format": FORMAT, "window": str(int(window)), "numels": json.dumps(numels)}
    return save(arrays, metadata=meta)


def decode(data: bytes, numels: Mapping[str, int] | None = None) -> SentRecord:
    """Parse a record (RecordError); with ``numels``, every tensor must be one of the model's,
    with its size."""
    try:
        arrays = load(data)
        meta = _metadata(data)
        window, sizes = int(meta["window"]), json.loads(meta["numels"])
        ok = meta["format"] == FORMAT and isinstance(sizes, dict) and set(sizes) == set(arrays)
    except (SafetensorError, ValueError, KeyError, TypeError) as e:
        raise RecordError(f"not a sent record ({e})"[:200]) from None
    if not ok:
        raise RecordError("not a sent record (bad metadata)")
    out = {}
    for name, idx in arrays.items():
        numel = sizes[name]
        if type(numel) is not int or idx.ndim != 1 or idx.dtype not in (np.int32, np.int64):
            raise RecordError(f"tensor {name!r}: not a list of flat indices"[:200])
        if numels is not None and numels.get(name) != numel:
            raise RecordError(f"tensor {name!r} of {numel} values is not one of the model's"[:200])
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= numel):
            raise RecordError(f"tensor {name!r}: an index outside 0..{numel - 1}"[:200])
        out[name] = idx.astype(np.int64)
    return SentRecord(window, out)


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (the header already parsed by ``load``)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])["__metadata__"]


def keep(state_dir: Path, window: int, sent) -> None:
    """Store which entries of the error feedback ``window``'s upload holds (before its PUT)."""
    folder = Path(state_dir) / FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(_path(state_dir, window), encode(window, sent))


def forget(state_dir: Path, window: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        _path(state_dir, window).unlink()


def _windows(state_dir: Path) -> dict[int, Path]:
    folder = Path(state_dir) / FOLDER
    found = sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
    out = {}
    for i, p in enumerate(found):  # <window>.sent in plain decimal; other names: a key < 0
        ok = p.stem.isascii() and p.stem.isdigit() and str(int(p.stem)) == p.stem
        out[int(p.stem) if ok else -1 - i] = p
    return out


def forget_through(state_dir: Path, window: int) -> None:
    """Delete the records of every window up to ``window`` (its state is saved)."""
    for w, path in _windows(state_dir).items():
        if 0 <= w <= window:
            path.unlink(missing_ok=True)


def kept(state_dir: Path, numels: Mapping[str, int] | None = None) -> dict[int, SentRecord]:
    """window -> record of every stored record (unreadable or foreign files: logged, removed)."""
    out: dict[int, SentRecord] = {}
    for w, path in _windows(state_dir).items():
        try:
            if w < 0:
                raise RecordError("not named <window>.sent")
            record = decode(path.read_bytes(), numels)
            if record.window != w:
                raise RecordError(f"holds window {record.window}")
        except (OSError, RecordError) as e:
            logger.warning("ignoring %s: not a sent record of this miner (%s); removed", path, e)
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        out[w] = record
    return out


def pending(state_dir: Path, saved_window: int) -> list[int]:
    """The windows of the records newer than a state saved at ``saved_window``."""
    try:
        return sorted(w for w in _windows(state_dir) if w > saved_window)
    except OSError:
        return []


def settle(
    state_dir: Path,
    saved_window: int,
    numels: Mapping[str, int],
    clear: Callable[[dict[str, np.ndarray]], None],
    absent: Collection[int] = (),
) -> list[int]:
    """Start-up: ``clear`` (set to zero) in the error feedback loaded from a state saved at
    ``saved_window`` the entries of every upload recorded after it; returns those windows.

    Records up to ``saved_window`` are deleted (that state holds them), and so are those of
    the ``absent`` windows, uploads the bucket does not hold (stopped before or during the
    PUT): their values stay in error feedback. The others stay until the next save, so a
    second stop before it clears them again."""
    try:
        records = kept(state_dir, numels)
    except OSError as e:  # e.g. an unreadable folder: start as before this record existed
        logger.warning("could not read the sent records under %s (%s)", state_dir, e)
        return []
    done = []
    for w, record in sorted(records.items()):
        if w <= saved_window:
            forget(state_dir, w)
            continue
        if w in absent:
            forget(state_dir, w)
            logger.info(
                "window %d: its upload is not in the bucket (stopped before its PUT): its "
                "entries stay in error feedback",
                w,
            )
            continue
        clear(record.indices)
        done.append(w)
        logger.warning(
            "window %d: stopped after its upload was sent but before its state was saved: "
            "%d sent entries cleared from the error feedback saved at window %d",
            w,
            record.count,
            saved_window,
        )
    return done
