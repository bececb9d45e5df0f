"""Read raw text documents from files, folders, jsonl or parquet (for dataset preparation)."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".text"}


def fallback_corpus(limit: int) -> str:
    """Text every Python install has: the standard library's own source files."""
    stdlib = Path(inspect.getfile(inspect)).parent
    parts: list[str] = []
    size = 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        size += len(text)
        if size >= limit:
            break
    return "\n".join(parts)[:limit]


def iter_documents(paths: list[str | Path], text_column: str = "text") -> Iterator[str]:
    """Yield documents: a text file is one document; jsonl/parquet give one per row."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            yield from iter_documents(files, text_column)
        elif not path.exists():
            raise FileNotFoundError(f"input {path} does not exist")
        elif path.suffix == ".jsonl":
            yield from _jsonl(path, text_column)
        elif path.suffix == ".parquet":
            yield from _parquet(path, text_column)
        elif path.suffix in TEXT_SUFFIXES or not path.suffix:
            yield path.read_text(encoding="utf-8", errors="replace")
        else:
            logger.info("skipping %s (not .txt/.md/.jsonl/.parquet)", path)


def _jsonl(path: Path, column: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise ValueError(f"{path}:{n}: not valid JSON") from None
            text = row.get(column) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"{path}:{n}: no string column {column!r}")
            yield text


def _parquet(path: Path, column: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError(
            "reading parquet needs pyarrow: pip install 'template[parquet]'"
        ) from None
    table = pq.ParquetFile(path)
    if column not in table.schema_arrow.names:
        raise ValueError(f"{path}: no column {column!r} (columns: {table.schema_arrow.names})")
    for batch in table.iter_batches(columns=[column]):
        for text in batch.column(0).to_pylist():
            if isinstance(text, str):
                yield text
