"""Bounded exponential back-off for transient chain failures.

Only failures :func:`is_transient` accepts are retried (dropped connections, pool races);
a chain-side rejection (not registered, rate limited, ...) would fail identically and is
raised at once. Between attempts the caller's ``reconnect`` runs, so a dead websocket is
replaced instead of being retried against.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from template.retry import RetryPolicy

from .errors import ConnectionLostError
from .subtensor_errors import is_transient, to_chain_error

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def with_retry(
    op: Callable[[], Awaitable[T]],
    action: str,
    *,
    policy: RetryPolicy,
    reconnect: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Run ``op``; on a transient failure reconnect, back off and try again (bounded)."""
    last: BaseException | None = None
    for attempt in range(policy.attempts):
        try:
            return await op()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - classified below
            if not is_transient(error):
                raise to_chain_error(error, action) from error
            last = error
            if attempt == policy.attempts - 1:
                break
            wait = policy.delay(attempt)
            logger.warning("%s: transient failure (%s); retrying in %.1fs", action, error, wait)
            await asyncio.sleep(wait)
            if reconnect is not None:
                try:
                    await reconnect()
                except Exception as reconnect_error:  # noqa: BLE001 - next attempt decides
                    logger.warning("%s: reconnect failed: %s", action, reconnect_error)
    raise ConnectionLostError(
        f"{action}: gave up after {policy.attempts} attempts ({last})"
    ) from last
