"""Delete this node's own per-window objects once they are older than N windows."""

from __future__ import annotations

import logging

from . import keys
from .client import StorageClient

logger = logging.getLogger(__name__)

DEFAULT_KINDS = (
    keys.UPLOADS,
    keys.REVEALS,
    keys.PEERS,
    keys.AGGREGATES,
    keys.FINGERPRINTS,
    keys.VERDICTS,
)


async def delete_old_objects(
    client: StorageClient,
    current_window: int,
    keep_windows: int,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    keep_checkpoints: int | None = None,
) -> int:
    """Delete objects of ``kinds`` whose window < ``current_window - keep_windows``.

    Checkpoints are swept only when ``keep_checkpoints`` is given: then all but the newest
    ``keep_checkpoints`` checkpoint windows go (``latest.safetensors`` is never touched). Objects
    whose names carry no window (datasets, pointers, foreign files) are left alone.
    Returns how many objects were deleted.
    """
    if keep_windows < 0:
        raise ValueError("keep_windows must be >= 0")
    cutoff = current_window - keep_windows
    doomed: list[str] = []
    for kind in kinds:
        if kind == keys.CHECKPOINTS:
            continue
        for obj in await client.list(f"{keys.ROOT}/{kind}/"):
            parsed = keys.window_of_key(obj.key)
            if parsed is not None and parsed[1] < cutoff:
                doomed.append(obj.key)
    if keep_checkpoints is not None:
        objs = await client.list(f"{keys.ROOT}/{keys.CHECKPOINTS}/")
        windows = sorted({p[1] for o in objs if (p := keys.window_of_key(o.key))}, reverse=True)
        keep = set(windows[: max(keep_checkpoints, 1)])
        for o in objs:
            p = keys.window_of_key(o.key)
            if p is not None and p[1] not in keep and p[1] < cutoff:
                doomed.append(o.key)
    if not doomed:
        return 0
    n = await client.delete(doomed)
    logger.info("retention: deleted %d objects older than window %d", n, cutoff)
    return n
