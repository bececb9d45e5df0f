"""An async S3 client for one bucket: boto3 in a bounded thread pool, our own retries and caps.

Every request has a wall-clock timeout; failures are retried per ``retry.RetryPolicy``; a
download never reads more than ``max_bytes`` (Content-Length is checked first, then the
stream is cut at the cap) and is checked against the uploader's sha256 when one is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .config import BucketConfig
from .errors import (
    AccessDenied,
    ObjectNotFound,
    StorageError,
    TransferTimeout,
    TransientStorageError,
    TruncatedObject,
)
from .retry import TIMEOUT, TRUNCATED, classify
from .sockets import shut_sockets, track_sockets
from .transfer import (  # noqa: F401
    FetchedObject,
    KiB,
    MiB,
    ObjectInfo,
    TransferConfig,
    _aware,
    _Cancel,
    _etag,
    make_boto_client,
    read_body,
    sha256_hex,
)

logger = logging.getLogger(__name__)


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
        self._sockets = track_sockets(self._s3, public_only=cfg.public_only)  # netguard.py
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
        """Cancel queued requests; end reads stuck on a hung endpoint now (sockets.py)."""
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        shut_sockets(self._sockets)
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
                async with asyncio.timeout(timeout):
                    return await loop.run_in_executor(self._executor, fn, cancel)
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
        r = self._s3.get_object(Bucket=self.bucket, Key=key)
        what = self._what("GET", key)
        chunk = self.transfer.chunk_size
        return read_body(r, what, max_bytes, expected_sha256, sink, cancel, chunk, key)


__all__ = [
    "FetchedObject",
    "ObjectInfo",
    "StorageClient",
    "StorageError",
    "TransferConfig",
    "make_boto_client",
    "sha256_hex",
]
