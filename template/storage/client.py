"""An async S3 client for one bucket: boto3 in a bounded thread pool, our own retries and caps.

Every request has a wall-clock timeout; failures are retried per ``retry.RetryPolicy``; a
download never reads more than ``max_bytes`` (Content-Length is checked first, then the
stream is cut at the cap) and is checked against the uploader's sha256 when one is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from .config import BucketConfig
from .errors import (
    AccessDenied,
    ChecksumMismatch,
    ObjectTooLarge,
    StorageError,
    TransferTimeout,
    TransientStorageError,
    TruncatedObject,
)
from .netguard import guard_client
from .retry import S3_RETRY, TIMEOUT, TRUNCATED, RetryPolicy, Truncated, classify

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


class StorageClient:
    """Async access to one bucket. Create one per bucket; ``close()`` when done."""

    def __init__(
        self,
        cfg: BucketConfig,
        transfer: TransferConfig | None = None,
        executor: ThreadPoolExecutor | None = None,
    ):
        self.cfg = cfg
        self.transfer = transfer or TransferConfig()
        self._s3 = make_boto_client(cfg, self.transfer)
        if cfg.public_only:
            guard_client(self._s3)  # a peer's bucket: public addresses only, checked at connect
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=self.transfer.max_threads, thread_name_prefix="s3"
        )

    def __repr__(self) -> str:
        return f"StorageClient({self.cfg.address})"

    @property
    def bucket(self) -> str:
        return self.cfg.bucket

    async def close(self) -> None:
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._s3.close()

    async def __aenter__(self) -> StorageClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the retry loop ------------------------------------------------------------
    async def _call(
        self, what: str, fn: Callable[[_Cancel], Any], deadline: float | None = None
    ) -> Any:
        """Run ``fn`` in the pool with a per-attempt timeout, retrying transient failures.

        ``deadline`` is an absolute ``time.monotonic()`` past which no attempt starts or runs.
        """
        loop = asyncio.get_running_loop()
        policy = self.transfer.retry
        reasons: list[str] = []
        kind = None
        budget_spent = False
        for attempt in range(1, policy.attempts + 1):
            timeout = self.transfer.request_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    budget_spent = True
                    break
            cancel = _Cancel(time.monotonic() + timeout)
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(self._executor, fn, cancel), timeout
                )
            except BaseException as e:
                cancel.event.set()  # stop the worker thread at its next chunk
                if not isinstance(e, Exception):
                    raise  # cancelled: the caller gave up
                kind, reason, final = classify(e, what)
                if final is not None:
                    raise final from None
                if kind is None:
                    raise
                reasons.append(reason)
                logger.debug("%s: attempt %d failed (%s)", what, attempt, reason)
            if attempt < policy.attempts:
                pause = policy.delay(attempt - 1)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    budget_spent = True
                    break
                await asyncio.sleep(pause)
        summary = (
            f"{what}: {reasons[-1] if reasons else 'not tried'} after {len(reasons)} attempt(s)"
        )
        if budget_spent:
            raise TransferTimeout(summary + "; time budget spent")
        if kind == TIMEOUT:
            raise TransferTimeout(summary)
        if kind == TRUNCATED:
            raise TruncatedObject(summary)
        raise TransientStorageError(summary)

    def _what(self, op: str, key: str = "") -> str:
        return f"{op} {self.cfg.address}/{key}"

    # --- writes ---------------------------------------------------------------------
    async def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        deadline: float | None = None,
    ) -> str:
        """Upload ``data`` to ``key`` (multipart above the threshold); returns the ETag."""
        data = bytes(data)
        if len(data) >= self.transfer.multipart_threshold:
            view = memoryview(data)
            return await self._multipart(
                key, len(data), lambda a, b: bytes(view[a:b]), content_type, deadline
            )

        def put(_: _Cancel) -> str:
            r = self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
            return _etag(r.get("ETag"))

        return await self._call(self._what("PUT", key), put, deadline)

    async def put_file(
        self, key: str, path: str | os.PathLike, content_type: str = "application/octet-stream"
    ) -> str:
        """Upload a local file, reading parts from disk (large checkpoints and dataset shards)."""
        path = Path(path)
        size = path.stat().st_size
        if size < self.transfer.multipart_threshold:
            return await self.put_bytes(key, path.read_bytes(), content_type)

        def read_range(a: int, b: int) -> bytes:
            with open(path, "rb") as f:
                f.seek(a)
                return f.read(b - a)

        return await self._multipart(key, size, read_range, content_type, None)

    async def _multipart(
        self,
        key: str,
        size: int,
        read_range: Callable[[int, int], bytes],
        content_type: str,
        deadline: float | None,
    ) -> str:
        part = self.transfer.part_size
        ranges = [(a, min(a + part, size)) for a in range(0, size, part)]
        what = self._what("PUT(multipart)", key)

        def create(_: _Cancel) -> str:
            r = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )
            return r["UploadId"]

        upload_id = await self._call(what, create, deadline)
        sem = asyncio.Semaphore(min(self.transfer.max_threads, len(ranges)))

        async def send(number: int, a: int, b: int) -> dict:
            def upload(_: _Cancel) -> dict:
                r = self._s3.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=read_range(a, b),
                )
                return {"PartNumber": number, "ETag": r["ETag"]}

            async with sem:
                return await self._call(f"{what} part {number}", upload, deadline)

        try:
            parts = await asyncio.gather(*(send(i + 1, a, b) for i, (a, b) in enumerate(ranges)))

            def complete(_: _Cancel) -> str:
                r = self._s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)},
                )
                return _etag(r.get("ETag"))

            return await self._call(what + " complete", complete, deadline)
        except BaseException:
            await self._abort(key, upload_id)
            raise

    async def _abort(self, key: str, upload_id: str) -> None:
        def abort(_: _Cancel) -> None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

        try:
            await asyncio.shield(self._call(self._what("ABORT", key), abort))
        except Exception as e:  # noqa: BLE001 - best effort; the bucket's lifecycle rule cleans up
            logger.warning("could not abort multipart upload of %s: %s", key, e)

    async def delete(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` (batches of 1000); returns how many the endpoint confirmed."""
        keys = list(keys)
        done = 0
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]

            def rm(_: _Cancel, batch: list[str] = batch) -> int:
                r = self._s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": False},
                )
                errors = r.get("Errors", [])
                for err in errors:
                    logger.warning("could not delete %s: %s", err.get("Key"), err.get("Code"))
                if any(err.get("Code") == "AccessDenied" for err in errors):
                    raise AccessDenied(self._what("DELETE", "") + ": access denied")
                return len(r.get("Deleted", []))

            done += await self._call(self._what("DELETE", f"[{len(batch)} keys]"), rm)
        return done

    async def create_bucket(self) -> None:
        """Create the bucket if it does not exist (local set-up and tests)."""

        def create(_: _Cancel) -> None:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.cfg.region not in ("us-east-1", "auto", ""):
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.cfg.region}
            with contextlib.suppress(self._s3.exceptions.BucketAlreadyOwnedByYou):
                self._s3.create_bucket(**kwargs)

        await self._call(self._what("CREATE"), create)

    # --- reads ----------------------------------------------------------------------
    async def head(self, key: str, deadline: float | None = None) -> ObjectInfo:
        """Size, LastModified and ETag of ``key`` (ObjectNotFound if absent)."""

        def head(_: _Cancel) -> ObjectInfo:
            r = self._s3.head_object(Bucket=self.bucket, Key=key)
            size = r.get("ContentLength")
            if not isinstance(size, int) or size < 0:
                # a proxy or broken endpoint that omits the size: a clear storage error, not a crash
                raise TransientStorageError(f"HEAD {self.cfg.address}/{key}: no Content-Length")
            return ObjectInfo(key, size, _aware(r.get("LastModified")), _etag(r.get("ETag")))

        return await self._call(self._what("HEAD", key), head, deadline)

    async def exists(self, key: str) -> bool:
        from .errors import ObjectNotFound

        try:
            await self.head(key)
            return True
        except ObjectNotFound:
            return False

    async def list(self, prefix: str = "", limit: int = 100_000) -> list[ObjectInfo]:
        """Objects under ``prefix`` in key order (at most ``limit``; bounded against huge buckets)."""

        def ls(_: _Cancel) -> list[ObjectInfo]:
            out: list[ObjectInfo] = []
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for o in page.get("Contents", []):
                    out.append(
                        ObjectInfo(
                            o["Key"],
                            int(o["Size"]),
                            _aware(o.get("LastModified")),
                            _etag(o.get("ETag")),
                        )
                    )
                    if len(out) >= limit:
                        return out
            return out

        return await self._call(self._what("LIST", prefix), ls)

    async def get(
        self,
        key: str,
        max_bytes: int,
        expected_sha256: str | None = None,
        deadline: float | None = None,
    ) -> FetchedObject:
        """Download ``key`` into memory, reading at most ``max_bytes``.

        ObjectTooLarge past the cap, ChecksumMismatch when ``expected_sha256`` (hex) differs.
        """

        def fetch(cancel: _Cancel) -> FetchedObject:
            chunks: list[bytes] = []  # per attempt: a timed-out attempt may still be writing
            info = self._stream(key, max_bytes, expected_sha256, chunks.append, cancel)
            return FetchedObject(b"".join(chunks), info)

        return await self._call(self._what("GET", key), fetch, deadline)

    async def get_bytes(
        self,
        key: str,
        max_bytes: int,
        expected_sha256: str | None = None,
        deadline: float | None = None,
    ) -> bytes:
        """The bytes of ``key`` (see ``get``)."""
        return (await self.get(key, max_bytes, expected_sha256, deadline)).data

    async def download_file(
        self,
        key: str,
        path: str | os.PathLike,
        max_bytes: int,
        expected_sha256: str | None = None,
    ) -> ObjectInfo:
        """Stream ``key`` to ``path`` (written to a temporary file, renamed when verified)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def fetch(cancel: _Cancel) -> ObjectInfo:
            # one temporary file per attempt: a timed-out attempt may still be writing its own
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                with open(tmp, "wb") as f:
                    info = self._stream(key, max_bytes, expected_sha256, f.write, cancel)
                cancel.check()
                os.replace(tmp, path)
                return info
            finally:
                tmp.unlink(missing_ok=True)

        return await self._call(self._what("GET", key), fetch)

    def _stream(
        self,
        key: str,
        max_bytes: int,
        expected_sha256: str | None,
        sink: Callable[[bytes], Any],
        cancel: _Cancel,
    ) -> ObjectInfo:
        """(Worker thread.) GET ``key`` and feed its body to ``sink`` within the caps."""
        what = self._what("GET", key)
        r = self._s3.get_object(Bucket=self.bucket, Key=key)
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
                chunk = read(self.transfer.chunk_size)
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


__all__ = [
    "FetchedObject",
    "ObjectInfo",
    "StorageClient",
    "StorageError",
    "TransferConfig",
    "make_boto_client",
    "sha256_hex",
]
