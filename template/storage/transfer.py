"""What a storage client is built from: transfer settings, object metadata, the boto3 client
factory (our timeouts, botocore's retries off), the per-attempt cancel flag, and the capped,
checksummed body reader a GET runs in a worker thread."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from .config import BucketConfig
from .errors import ChecksumMismatch, ObjectTooLarge
from .retry import S3_RETRY, RetryPolicy, Truncated

logger = logging.getLogger(__name__)

KiB, MiB = 1024, 1024 * 1024


def _quiet_sdk_loggers() -> None:
    """botocore logs request headers (with the access key id) at DEBUG: keep it at INFO unless
    the operator set its level explicitly (set TEMPLATE_S3_SDK_DEBUG=1 to leave it alone)."""
    if os.environ.get("TEMPLATE_S3_SDK_DEBUG") == "1":
        return
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.INFO)


_quiet_sdk_loggers()


@dataclass(frozen=True)
class TransferConfig:
    """Timeouts, retries, multipart and concurrency settings of a client."""

    connect_timeout: float = 5.0  # seconds to open a connection
    read_timeout: float = 20.0  # seconds one socket read may wait
    request_timeout: float = 60.0  # wall clock of one attempt (headers and body)
    retry: RetryPolicy = S3_RETRY
    multipart_threshold: int = 64 * MiB  # objects at least this large go up in parts
    part_size: int = 16 * MiB  # S3 needs >= 5 MiB for every part but the last
    max_threads: int = 16  # the client's thread pool (and HTTP connection pool)
    chunk_size: int = 256 * KiB  # read size while streaming a body

    def __post_init__(self) -> None:
        if self.part_size < 1 or self.multipart_threshold < 1 or self.max_threads < 1:
            raise ValueError("part_size, multipart_threshold and max_threads must be positive")


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD (or a listing) says about an object."""

    key: str
    size: int
    last_modified: datetime  # timezone-aware (UTC)
    etag: str

    @property
    def last_modified_unix(self) -> float:
        return self.last_modified.timestamp()


@dataclass(frozen=True)
class FetchedObject:
    """A downloaded object and its metadata."""

    data: bytes
    info: ObjectInfo


def _aware(dt: datetime | None) -> datetime:
    if dt is None:
        return datetime.fromtimestamp(0, UTC)
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


def make_boto_client(cfg: BucketConfig, transfer: TransferConfig):
    """A boto3 S3 client for ``cfg`` with our timeouts and botocore's own retries turned off."""
    anonymous = not (cfg.access_key_id and cfg.secret_access_key)
    config = Config(
        connect_timeout=transfer.connect_timeout,
        read_timeout=transfer.read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=transfer.max_threads,
        s3={"addressing_style": cfg.addressing_style},
        signature_version=UNSIGNED if anonymous else "s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        ignore_configured_endpoint_urls=True,  # AWS_ENDPOINT_URL must not redirect a peer's bucket
    )
    with _SESSION_LOCK:  # boto3 sessions are not thread-safe; one shared session halves set-up
        return _session().client(
            "s3",
            endpoint_url=cfg.endpoint_url or None,
            region_name=cfg.region or "us-east-1",
            aws_access_key_id=cfg.access_key_id or None,
            aws_secret_access_key=cfg.secret_access_key or None,
            config=config,
        )


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


class _Cancel:
    """Tells a worker thread to stop streaming (its attempt timed out)."""

    def __init__(self, deadline: float):
        self.deadline = deadline  # time.monotonic()
        self.event = threading.Event()

    def check(self) -> None:
        if self.event.is_set() or time.monotonic() > self.deadline:
            raise TimeoutError("attempt deadline passed while streaming")


def read_body(
    r: dict,
    what: str,
    max_bytes: int,
    expected_sha256: str | None,
    sink,
    cancel: _Cancel,
    chunk_size: int,
    key: str,
) -> ObjectInfo:
    """(Worker thread.) Feed a GET response's body to ``sink`` within the caps: the size
    (Content-Length first, then the stream cut at the cap), a complete body, the sha256."""
    body = r["Body"]
    try:
        length = r.get("ContentLength")
        if length is not None and int(length) > max_bytes:
            raise ObjectTooLarge(f"{what}: {int(length)} bytes, over the cap of {max_bytes}")
        raw = getattr(body, "_raw_stream", None)
        read = raw.read1 if hasattr(raw, "read1") else body.read
        digest = hashlib.sha256()
        total = 0
        while True:
            cancel.check()
            chunk = read(chunk_size)
            if not chunk:
                break
            cancel.check()
            total += len(chunk)
            if total > max_bytes:
                raise ObjectTooLarge(f"{what}: body passed the cap of {max_bytes} bytes")
            digest.update(chunk)
            sink(chunk)
        if length is not None and total != int(length):
            raise Truncated(f"{total} of {int(length)} bytes")
    finally:
        body.close()
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256.lower():
        raise ChecksumMismatch(f"{what}: sha256 differs from the signed digest")
    return ObjectInfo(key, total, _aware(r.get("LastModified")), _etag(r.get("ETag")))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
