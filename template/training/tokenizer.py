"""Tokenizers: the built-in byte-level one, or a Hugging Face tokenizer from a local folder.

Both are real Hugging Face tokenizers once saved: ``ByteTokenizer.save_pretrained(dir)`` writes a
``tokenizer.json`` built with the ``tokenizers`` library from local definitions (ids 0-255 are
the UTF-8 bytes, 256 is ``<|endoftext|>``), which ``AutoTokenizer.from_pretrained(dir)`` loads and
which encodes exactly like ``ByteTokenizer.encode``. Nothing is ever fetched from a hub.

A tokenizer is named in the dataset manifest and pinned in the run hparams (``data.tokenizer``)
by ``byte`` or by ``sha256:<hex of tokenizer.json>``, so every node uses the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

EOT_TOKEN = "<|endoftext|>"
TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eot_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def save_pretrained(self, folder: str | Path) -> Path: ...


def byte_unicode_table() -> list[str]:
    """The printable character standing for each byte 0..255 (the GPT-2 byte-level alphabet:
    printable Latin-1 bytes stand for themselves, the others move to code points from 256 on).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = [], 0
    for b in range(256):
        if b in keep:
            table.append(chr(b))
        else:
            table.append(chr(256 + extra))
            extra += 1
    return table


def _save_fast(tok: object, folder: Path, eos: str, max_length: int | None) -> Path:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=eos)
    if max_length:
        fast.model_max_length = max_length
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


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

    def hf_tokenizer(self):
        """The same tokenizer as a ``tokenizers.Tokenizer`` (byte-level, no merges)."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        vocab = {ch: i for i, ch in enumerate(byte_unicode_table())}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(EOT_TOKEN, special=True, normalized=False)])
        assert tok.token_to_id(EOT_TOKEN) == self.eot_id
        return tok

    def save_pretrained(self, folder: str | Path, max_length: int | None = None) -> Path:
        """Write a Hugging Face tokenizer folder (tokenizer.json + config) for this tokenizer."""
        return _save_fast(self.hf_tokenizer(), Path(folder), EOT_TOKEN, max_length)


def tokenizer_sha256(folder: str | Path) -> str:
    """``sha256:<hex>`` of a tokenizer folder's ``tokenizer.json``: the name pinned in hparams."""
    data = (Path(folder) / TOKENIZER_FILE).read_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HFTokenizer:
    """A Hugging Face tokenizer saved in a local folder (never fetched from a hub)."""

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        self.path = Path(path)
        if not (self.path / TOKENIZER_FILE).is_file():
            raise FileNotFoundError(
                f"tokenizer folder {self.path} holds no {TOKENIZER_FILE}; pass 'byte' or a folder "
                "written by seed-train-tokenizer"
            )
        self._tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.name = tokenizer_sha256(self.path)
        self.vocab_size = len(self._tok)
        eot = self._tok.eos_token_id
        self.eot_id = int(eot) if eot is not None else self.vocab_size - 1

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)

    def save_pretrained(self, folder: str | Path, max_length: int | None = None) -> Path:
        if max_length:
            self._tok.model_max_length = max_length
        self._tok.save_pretrained(str(folder))
        return Path(folder)


def train_bpe(
    texts,
    vocab_size: int,
    folder: str | Path,
    min_frequency: int = 2,
    max_length: int | None = None,
) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` (an iterator of str) and save it as a Hugging
    Face folder; the end-of-text token is the last id, so ``vocab_size`` ids exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens([EOT_TOKEN])
    return _save_fast(tok, Path(folder), EOT_TOKEN, max_length)


def load_tokenizer(spec: str = "byte") -> Tokenizer:
    """``byte`` for the built-in byte tokenizer, otherwise a local tokenizer folder."""
    if spec == "byte":
        return ByteTokenizer()
    return HFTokenizer(spec)
