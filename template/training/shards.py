"""Token shards on disk: flat little-endian uint16/uint32 files plus a manifest.

``manifest.json``::

    {"format": "template-shards/1", "dtype": "uint16", "vocab_size": 257,
     "tokenizer": "byte", "total_tokens": N,
     "shards": [{"name": "shard_00000.bin", "tokens": n, "bytes": b, "sha256": "..."}]}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from template.fileio import file_sha256

FORMAT = "template-shards/1"
MANIFEST = "manifest.json"
_SHARD_NAME = re.compile(r"shard_[0-9]{5,}\.bin", re.ASCII)  # used with fullmatch: no "\n"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


class DatasetError(ValueError):
    """A dataset folder or manifest is unusable; the message says which file and why."""


@dataclass(frozen=True)
class ShardInfo:
    name: str
    tokens: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    dtype: str
    vocab_size: int
    tokenizer: str
    shards: tuple[ShardInfo, ...]

    @property
    def total_tokens(self) -> int:
        return sum(s.tokens for s in self.shards)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "dtype": self.dtype,
                "vocab_size": self.vocab_size,
                "tokenizer": self.tokenizer,
                "total_tokens": self.total_tokens,
                "shards": [s.__dict__ for s in self.shards],
            },
            indent=1,
        )


def parse_manifest(text: str | bytes) -> Manifest:
    """Strictly parse a manifest (local or downloaded); raises DatasetError naming the problem.

    This is the only parser of the format: the storage layer's dataset sync uses it too.
    """
    if len(text) > MAX_MANIFEST_BYTES:
        raise DatasetError(f"manifest is over {MAX_MANIFEST_BYTES} bytes")
    try:
        d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"manifest is not valid JSON: {e}") from None
    except RecursionError:  # a deeply nested document: malformed, not a crash
        raise DatasetError("manifest is nested too deeply to be a manifest") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise DatasetError(f"manifest format must be {FORMAT!r}")
    if d.get("dtype") not in _DTYPES:
        raise DatasetError(f"manifest dtype must be one of {sorted(_DTYPES)}")
    vocab = d.get("vocab_size")
    too_big = isinstance(vocab, int) and vocab > np.iinfo(_DTYPES[d["dtype"]]).max + 1
    if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab <= 0 or too_big:
        raise DatasetError("manifest vocab_size is missing or does not fit the dtype")
    tokenizer = d.get("tokenizer")
    if not isinstance(tokenizer, str) or not 0 < len(tokenizer) <= 512:
        raise DatasetError("manifest tokenizer must be a non-empty string")
    raw = d.get("shards")
    if not isinstance(raw, list) or not raw:
        raise DatasetError("manifest lists no shards")
    itemsize = np.dtype(_DTYPES[d["dtype"]]).itemsize
    shards: list[ShardInfo] = []
    for s in raw:
        if not isinstance(s, dict) or set(s) != {"name", "tokens", "bytes", "sha256"}:
            raise DatasetError(f"manifest shard entry malformed: {s!r}")
        if not isinstance(s["name"], str) or not _SHARD_NAME.fullmatch(s["name"]):
            raise DatasetError(f"bad shard name {s['name']!r} (expected shard_NNNNN.bin)")
        ints = all(
            isinstance(s[k], int) and not isinstance(s[k], bool) for k in ("tokens", "bytes")
        )
        if not ints or s["tokens"] <= 0 or s["bytes"] != s["tokens"] * itemsize:
            raise DatasetError(f"shard {s['name']}: tokens and bytes disagree")
        if not isinstance(s["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", s["sha256"]):
            raise DatasetError(f"shard {s['name']}: sha256 must be 64 lowercase hex digits")
        shards.append(ShardInfo(**s))
    if len({s.name for s in shards}) != len(shards):
        raise DatasetError("manifest repeats a shard name")
    manifest = Manifest(d["dtype"], vocab, tokenizer, tuple(shards))
    if "total_tokens" in d and d["total_tokens"] != manifest.total_tokens:
        raise DatasetError("manifest total_tokens differs from the sum of the shards' tokens")
    return manifest


def write_shards(
    token_chunks: Iterable[list[int]],
    out_dir: Path,
    *,
    vocab_size: int,
    tokenizer: str,
    shard_tokens: int = 1 << 24,
) -> Manifest:
    """Write token lists (one per document, already ending in EOT) into shards plus a manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = "uint16" if vocab_size <= 1 << 16 else "uint32"
    np_dtype = _DTYPES[dtype]
    shards: list[ShardInfo] = []
    buf: list[int] = []

    def flush() -> None:
        if not buf:
            return
        arr = np.asarray(buf, dtype=np_dtype)
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        name = f"shard_{len(shards):05d}.bin"
        (out_dir / name).write_bytes(data)
        shards.append(ShardInfo(name, len(arr), len(data), hashlib.sha256(data).hexdigest()))
        buf.clear()

    for chunk in token_chunks:
        buf.extend(chunk)
        while len(buf) >= shard_tokens:
            rest = buf[shard_tokens:]
            del buf[shard_tokens:]
            flush()
            buf.extend(rest)
    flush()
    manifest = Manifest(dtype, vocab_size, tokenizer, tuple(shards))
    if not shards:
        raise DatasetError("no tokens were produced: the input is empty")
    (out_dir / MANIFEST).write_text(manifest.to_json())
    return manifest


class TokenStream:
    """All shards of a dataset folder as one read-only token sequence (memory-mapped)."""

    def __init__(self, folder: str | Path, *, verify: bool = True):
        folder = Path(folder)
        self.folder = folder
        path = folder / MANIFEST
        if not path.is_file():
            raise DatasetError(f"{path} not found; run scripts/prepare_dataset.py first")
        self.manifest = parse_manifest(path.read_bytes())
        self._arrays = []
        for s in self.manifest.shards:
            shard = folder / s.name
            if not shard.is_file() or shard.stat().st_size != s.bytes:
                raise DatasetError(f"{shard} is missing or has the wrong size")
            if verify and file_sha256(shard) != s.sha256:
                raise DatasetError(f"{shard} does not match its sha256 in the manifest")
            dtype = np.dtype(_DTYPES[self.manifest.dtype]).newbyteorder("<")
            self._arrays.append(np.memmap(shard, dtype=dtype, mode="r"))
        self._starts = np.cumsum([0] + [len(a) for a in self._arrays])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) as int64."""
        if start < 0 or start + length > len(self):
            raise IndexError(f"token range [{start}, {start + length}) outside 0..{len(self)}")
        out = np.empty(length, dtype=np.int64)
        pos, filled = start, 0
        while filled < length:
            i = int(np.searchsorted(self._starts, pos, side="right") - 1)
            offset = pos - int(self._starts[i])
            take = min(length - filled, len(self._arrays[i]) - offset)
            out[filled : filled + take] = self._arrays[i][offset : offset + take]
            filled += take
            pos += take
        return out
