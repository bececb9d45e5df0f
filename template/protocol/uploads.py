"""Reading a miner's upload of a window: the sealed object plus its revealed key, opened.

Every node reads uploads through here (the validator's gather reads the sealed bytes itself,
under its timing checks, then opens them with ``reveal_of``/``unseal_upload``): one path from
a bucket to a signed upload's bytes. Nothing here raises for a bad peer; it returns None.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from template.storage import StorageClient, StorageError, keys
from template.training.seal import KEY_BYTES, SealError, seal_upload, unseal_upload

from .directory import read_or_none

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedUpload:
    """A miner's upload as stored (the sealed object's LastModified) and opened."""

    blob: bytes
    last_modified: float


async def reveal_of(
    client: StorageClient | None, hotkey: str, window: int, deadline: float | None = None
) -> bytes | None:
    """The key ``hotkey`` revealed for its upload of ``window``; None when absent or unreadable."""
    return await read_or_none(client, keys.reveal_key(hotkey, window), KEY_BYTES, deadline)


async def fetch_opened(
    client: StorageClient, hotkey: str, window: int, cap: int
) -> OpenedUpload | None:
    """``hotkey``'s upload of ``window``, fetched under ``cap`` bytes and opened with its
    revealed key; None when either object is missing or the key does not open it."""
    try:
        obj = await client.get(keys.upload_key(hotkey, window), cap)
    except StorageError as e:
        logger.debug("window %d: upload of %s unavailable: %s", window, hotkey[:8], e)
        return None
    key = await reveal_of(client, hotkey, window)
    if key is None:
        return None
    try:
        blob = unseal_upload(obj.data, key, window=window, hotkey=hotkey)
    except SealError as e:
        logger.info("window %d: upload of %s does not open: %s", window, hotkey[:8], e)
        return None
    return OpenedUpload(blob, obj.info.last_modified_unix)


def stored_objects(blob: bytes, *, window: int, hotkey: str) -> tuple[tuple[str, bytes], ...]:
    """What a miner stores for one signed upload, in order: (name, bytes) of the sealed upload
    (before the cut-off) and of its key (after it). For simulations and tests; the miner's
    loop stores the two at their own times."""
    sealed = seal_upload(blob, window=window, hotkey=hotkey)
    return (
        (keys.upload_key(hotkey, window), sealed.data),
        (keys.reveal_key(hotkey, window), sealed.key),
    )
