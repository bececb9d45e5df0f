"""Shared fixtures: a small byte-level dataset built from shared/ or a fallback corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


def fallback_text() -> str:
    """A corpus every Python install has: the standard library's own docstrings and sources."""
    import inspect
    import json as _json

    parts = [inspect.getsource(m) for m in (_json, inspect)]
    return "\n".join(parts)


def corpus_text(limit: int = 400_000) -> str:
    path = SHARED_DATA / "tinyshakespeare.txt"
    text = path.read_text(encoding="utf-8") if path.is_file() else fallback_text()
    return text[:limit]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A prepared byte-level dataset folder (shards + manifest) of ~400k tokens."""
    from template.training.shards import write_shards
    from template.training.tokenizer import ByteTokenizer

    out = tmp_path_factory.mktemp("dataset")
    tok = ByteTokenizer()
    text = corpus_text()
    docs = [tok.encode(text[i : i + 50_000]) + [tok.eot_id] for i in range(0, len(text), 50_000)]
    write_shards(docs, out, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=150_000)
    return out


sys.path.insert(0, str(ROOT))
