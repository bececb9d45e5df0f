"""Sealed uploads: a miner's signed upload is stored encrypted until its window's cut-off.

Before the cut-off nobody can read a window's uploads, so nobody can copy, average or shift
them (copiers, aggregators, ALIE-style miners need the others' deltas of the same window).
After the cut-off the miner publishes the key (``keys.reveal_key``), and every node opens
the sealed object. The content was fixed before the cut-off (the validator's watcher saw
it); the key is bound to it by its SHA-256 in the sealed header, so no second key can open
the same bytes to other content (AES-GCM alone does not commit to its key).

Sealed object (bytes): ``MAGIC`` | nonce (12) | sha256(key) (32) | AES-256-GCM ciphertext
of the signed upload, with its 16-byte tag. The associated data binds the window and the
hotkey, which come from the object's name, so sealed bytes copied into another miner's
folder or window never open. The key object is the 32 raw key bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SEEDSEAL\x01"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEAD = len(MAGIC) + NONCE_BYTES + 32
SEAL_OVERHEAD = _HEAD + TAG_BYTES  # sealed size = upload size + this


class SealError(ValueError):
    """A sealed upload or its key is malformed, or the key does not open it."""


@dataclass(frozen=True)
class Sealed:
    """A sealed upload and the key to reveal after the cut-off."""

    data: bytes
    key: bytes


def _aad(window: int, hotkey: str, key_digest: bytes) -> bytes:
    return MAGIC + struct.pack(">Q", window) + hotkey.encode() + b"\x00" + key_digest


def seal_upload(blob: bytes, *, window: int, hotkey: str, key: bytes | None = None) -> Sealed:
    """Encrypt ``blob`` (a signed upload) for ``hotkey``'s upload of ``window``.

    ``key`` defaults to 32 fresh random bytes; pass one only in tests.
    """
    key = os.urandom(KEY_BYTES) if key is None else key
    if len(key) != KEY_BYTES:
        raise ValueError(f"a seal key is {KEY_BYTES} bytes, got {len(key)}")
    nonce = os.urandom(NONCE_BYTES)
    digest = hashlib.sha256(key).digest()
    body = AESGCM(key).encrypt(nonce, blob, _aad(window, hotkey, digest))
    return Sealed(MAGIC + nonce + digest + body, key)


def unseal_upload(sealed: bytes, key: bytes, *, window: int, hotkey: str) -> bytes:
    """The signed upload inside ``sealed``, or SealError saying why it cannot be opened."""
    if len(sealed) < SEAL_OVERHEAD or not sealed.startswith(MAGIC):
        raise SealError(f"not a sealed upload ({len(sealed)} bytes, no {MAGIC[:8]!r} header)")
    if len(key) != KEY_BYTES:
        raise SealError(f"revealed key is {len(key)} bytes, expected {KEY_BYTES}")
    nonce = sealed[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    digest = sealed[len(MAGIC) + NONCE_BYTES : _HEAD]
    if hashlib.sha256(key).digest() != digest:
        raise SealError("revealed key does not match the key hash sealed with the upload")
    try:
        return AESGCM(key).decrypt(nonce, sealed[_HEAD:], _aad(window, hotkey, digest))
    except InvalidTag:
        raise SealError(
            "sealed upload does not open with its key (corrupted, or sealed for another "
            "window or hotkey)"
        ) from None
