"""Sealed uploads (training/seal.py): only the committed key opens them, only where stored."""

from __future__ import annotations

import pytest

from template.training.seal import KEY_BYTES, SEAL_OVERHEAD, SealError, seal_upload, unseal_upload

HK = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
OTHER = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
BLOB = b"a signed upload" * 100


def test_a_sealed_upload_opens_with_its_key_and_hides_its_content():
    s = seal_upload(BLOB, window=7, hotkey=HK)
    assert len(s.key) == KEY_BYTES and len(s.data) == len(BLOB) + SEAL_OVERHEAD
    assert BLOB[:15] not in s.data  # nothing readable before the key is out
    assert unseal_upload(s.data, s.key, window=7, hotkey=HK) == BLOB
    again = seal_upload(BLOB, window=7, hotkey=HK)
    assert again.key != s.key and again.data != s.data  # a fresh key and nonce every time


def test_another_key_window_or_hotkey_never_opens_it():
    s = seal_upload(BLOB, window=7, hotkey=HK)
    with pytest.raises(SealError, match="key hash"):
        unseal_upload(s.data, bytes(KEY_BYTES), window=7, hotkey=HK)
    with pytest.raises(SealError, match="another window or hotkey"):
        unseal_upload(s.data, s.key, window=8, hotkey=HK)  # replayed into a later window
    with pytest.raises(SealError, match="another window or hotkey"):
        unseal_upload(s.data, s.key, window=7, hotkey=OTHER)  # copied into another folder


def test_tampered_truncated_or_unsealed_bytes_are_refused_with_the_reason():
    s = seal_upload(BLOB, window=7, hotkey=HK)
    flipped = bytearray(s.data)
    flipped[-20] ^= 1
    with pytest.raises(SealError, match="corrupted"):
        unseal_upload(bytes(flipped), s.key, window=7, hotkey=HK)
    with pytest.raises(SealError, match="corrupted"):
        unseal_upload(s.data[:-1], s.key, window=7, hotkey=HK)
    with pytest.raises(SealError, match="not a sealed upload"):
        unseal_upload(s.data[: SEAL_OVERHEAD - 1], s.key, window=7, hotkey=HK)
    with pytest.raises(SealError, match="not a sealed upload"):
        unseal_upload(BLOB, s.key, window=7, hotkey=HK)
    with pytest.raises(SealError, match="revealed key is 5 bytes"):
        unseal_upload(s.data, b"short", window=7, hotkey=HK)
    with pytest.raises(ValueError, match="32 bytes"):
        seal_upload(BLOB, window=7, hotkey=HK, key=b"short")
