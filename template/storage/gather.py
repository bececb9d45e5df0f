"""Download many objects from many buckets at once, within a concurrency bound and a time budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .client import StorageClient
from .errors import StorageError, TransferTimeout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GetRequest:
    """One object to fetch: from which bucket (client), which key, at most how many bytes."""

    client: StorageClient
    key: str
    max_bytes: int
    expected_sha256: str | None = None


async def gather(
    requests: Sequence[GetRequest], concurrency: int = 16, time_budget: float | None = None
) -> list[bytes | StorageError]:
    """Fetch every request; one result per request, in order: the bytes or a StorageError.

    At most ``concurrency`` downloads run at once. Past ``time_budget`` seconds every request
    not finished yet ends as TransferTimeout. Never raises for a single bad peer.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    deadline = None if time_budget is None else time.monotonic() + time_budget
    sem = asyncio.Semaphore(concurrency)

    async def one(req: GetRequest) -> bytes | StorageError:
        async with sem:
            if deadline is not None and time.monotonic() >= deadline:
                return TransferTimeout(f"GET {req.client.cfg.address}/{req.key}: time budget spent")
            try:
                return await req.client.get_bytes(
                    req.key, req.max_bytes, req.expected_sha256, deadline=deadline
                )
            except StorageError as e:
                return e
            except Exception as e:  # noqa: BLE001 - a peer must never crash the caller
                logger.exception("unexpected error fetching %s", req.key)
                return StorageError(f"GET {req.client.cfg.address}/{req.key}: {type(e).__name__}")

    tasks = [asyncio.ensure_future(one(r)) for r in requests]
    if not tasks:
        return []
    grace = None if time_budget is None else time_budget + 1.0
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for t in pending:
        t.cancel()
    results: list[bytes | StorageError] = []
    for req, t in zip(requests, tasks, strict=True):
        if t in done and not t.cancelled():
            results.append(t.result())
        else:
            results.append(TransferTimeout(f"GET {req.client.cfg.address}/{req.key}: budget spent"))
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return results
