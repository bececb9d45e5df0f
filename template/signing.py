"""sr25519 signatures over bytes, with the same keys bittensor wallets hold.

Every signed thing in the project (uploads, leader documents, dev-chain writes)
goes through these two functions, so there is one place that decides what a
valid signature is.
"""

from __future__ import annotations

from typing import Protocol

from bittensor.sp_core import verify as _sp_verify


class SigningKey(Protocol):
    """Anything that signs bytes: a ``bittensor.sp_core.Keypair`` or a wallet's hotkey."""

    @property
    def ss58_address(self) -> str: ...

    def sign(self, payload: bytes) -> bytes: ...


def sign(key: SigningKey, payload: bytes) -> str:
    """Sign ``payload`` and return the signature as 0x-prefixed hex."""
    return "0x" + bytes(key.sign(payload)).hex()


def verify(ss58_address: str, payload: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid signature of ``payload`` by ``ss58_address``.

    Never raises on malformed input: a garbled address or signature is simply invalid.
    """
    try:
        sig = bytes.fromhex(signature_hex.removeprefix("0x"))
        if len(sig) != 64:
            return False
        return bool(_sp_verify(payload, sig, ss58_address))
    except Exception:  # noqa: BLE001 - any decoding failure means "not valid"
        return False


def dev_keypair(uri: str):
    """A deterministic keypair from a dev URI such as ``//Alice`` (tests and the local subnet only)."""
    from bittensor.sp_core import Keypair

    return Keypair.create_from_uri(uri)
