"""Who sent a write: bittensor's ``btauth/1`` signed headers, bound to this node's identity.

The client signs method, path, sha256(body), a nanosecond nonce and the node's ss58 with the
key it acts for (hotkey or coldkey). The server checks the signature and freshness here and
records the nonce in SQLite inside the write's own transaction, so a replayed request is
refused even after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping

import bittensor as bt

from .errors import DevChainError

MAX_AGE_S = 30.0  # a signed request must arrive within this long
ALLOWED_SKEW_S = 5.0
NONCE_RETENTION_S = 120.0  # > MAX_AGE_S + ALLOWED_SKEW_S: older nonces are stale anyway


class _DeferredNonceStore:
    """Accepts every nonce: the real replay check runs in the write transaction (store.py)."""

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        return True


def sign_request(key, method: str, path: str, body: bytes, node_ss58: str) -> dict[str, str]:
    """The btauth/1 headers for one request (a fresh nonce each call)."""
    return bt.http_auth.sign(key, method=method, path=path, body=body, receiver_ss58=node_ss58)


def authenticate(
    headers: Mapping[str, str], body: bytes, method: str, path: str, node_ss58: str
) -> tuple[str, int]:
    """(signer ss58, nonce) of a request, or DevChainError naming what is wrong."""
    try:
        caller = bt.http_auth.verify(
            headers,
            body,
            method=method,
            path=path,
            self_hotkey_ss58=node_ss58,
            max_age=MAX_AGE_S,
            allowed_skew=ALLOWED_SKEW_S,
            nonce_store=_DeferredNonceStore(),
        )
    except bt.http_auth.MalformedAuth as e:
        raise DevChainError("invalid_request", f"bad auth headers: {e}") from None
    except bt.http_auth.AuthError as e:
        raise DevChainError("bad_signature", f"request not authenticated: {e}") from None
    return caller.hotkey_ss58, caller.nonce_ns
