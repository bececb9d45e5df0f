"""Tokenizers: a byte-level default that needs no files, or a Hugging Face tokenizer from a local path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eot_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes as ids 0..255, plus an end-of-text id 256 between documents."""

    name: str = "byte"
    vocab_size: int = 257
    eot_id: int = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """Any Hugging Face tokenizer saved in a local folder (never fetched from a hub)."""

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"tokenizer folder {path} does not exist; pass 'byte' or a local path"
            )
        self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.name = f"hf:{path.name}"
        self.vocab_size = len(self._tok)
        eot = self._tok.eos_token_id
        self.eot_id = int(eot) if eot is not None else self.vocab_size - 1

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


def load_tokenizer(spec: str = "byte") -> Tokenizer:
    """``byte`` for the built-in byte tokenizer, otherwise a local tokenizer folder."""
    if spec == "byte":
        return ByteTokenizer()
    return HFTokenizer(spec)
