"""How a failed S3 request is classified, and the back-off between attempts.

Throttling (SlowDown, 503, 429), 5xx, timeouts, dropped connections and truncated bodies are
retried with exponential back-off and full jitter. Everything else (NoSuchKey, AccessDenied,
other 4xx, size and checksum failures) fails at once.
"""

from __future__ import annotations

import urllib3.exceptions
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from template.retry import RetryPolicy

from .errors import AccessDenied, BucketNotFound, ObjectNotFound, StorageError

# Failure kinds of a retryable error; they pick the exception raised once retries run out.
TIMEOUT, TRUNCATED, THROTTLED, SERVER, CONNECTION = (
    "timeout",
    "truncated",
    "throttled",
    "server error",
    "connection error",
)

_NOT_FOUND = {"NoSuchKey", "NotFound", "404", "NoSuchUpload"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "403",
    "401",
}
_THROTTLE = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "RequestLimitExceeded",
}
_RETRY_CODES = {"InternalError", "ServiceUnavailable", "RequestTimeout", "ServerError"}


class Truncated(Exception):
    """The body ended before Content-Length bytes arrived (internal; retried)."""


# S3 transfers: 4 tries, 0.25 s doubling to at most 8 s, full jitter.
S3_RETRY = RetryPolicy(attempts=4, base_delay=0.25, max_delay=8.0, jitter=True)


def classify(exc: BaseException, what: str) -> tuple[str | None, str, StorageError | None]:
    """(retry kind or None, short reason, final error when not retryable).

    ``what`` names the request in the final error ("GET bucket/key"); no credentials in it.
    """
    inner = exc.kwargs.get("error") if isinstance(exc, HTTPClientError) else None
    if isinstance(inner, StorageError):  # raised in the connection (the address guard)
        exc = inner
    if isinstance(exc, StorageError):
        return None, str(exc), exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        reason = f"{code or status} {err.get('Message', '')}".strip()
        if code == "NoSuchBucket":
            return None, reason, BucketNotFound(f"{what}: no such bucket")
        if code in _NOT_FOUND or status == 404:
            return None, reason, ObjectNotFound(f"{what}: not found")
        if code in _DENIED or status in (401, 403):
            return None, reason, AccessDenied(f"{what}: access denied ({code or status})")
        if code in _THROTTLE or status in (429, 503):
            return THROTTLED, reason, None
        if code in _RETRY_CODES or status >= 500:
            return SERVER, reason, None
        return None, reason, StorageError(f"{what}: request rejected ({reason})")
    if isinstance(exc, TimeoutError | ReadTimeoutError | ConnectTimeoutError):
        return TIMEOUT, "timed out", None
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.TimeoutError):
        return TIMEOUT, "timed out", None
    if isinstance(
        exc,
        Truncated | IncompleteReadError | ResponseStreamingError | urllib3.exceptions.ProtocolError,
    ):
        return TRUNCATED, "body truncated", None
    if isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | OSError):
        return CONNECTION, type(exc).__name__, None
    if isinstance(exc, BotoCoreError):
        return None, type(exc).__name__, StorageError(f"{what}: {type(exc).__name__}: {exc}")
    return None, type(exc).__name__, None  # a bug: the caller re-raises it unchanged
