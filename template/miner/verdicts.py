"""What the validators said about this miner's uploads: each one publishes its verdicts on a
window's uploads (``protocol.documents.Verdicts``). The miner reads its own entry from every
validator once a window, logs it and keeps it for the status file, so a miner unpaid for a
window sees why (unproven, harmful, late, ...) without the validators' logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from template.hparams import HParams
from template.protocol.catchup import fetch_verdicts
from template.protocol.directory import PeerDirectory
from template.protocol.documents import Verdict

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0  # verdicts are news, not duties: a slow validator is skipped


async def read_own_verdicts(
    directory: PeerDirectory, hp: HParams, window: int, uid: int, skip: Collection[str] = ()
) -> dict[str, Verdict]:
    """Validator hotkey -> its verdict on ``uid``'s upload of ``window``, for each validator
    (but those in ``skip``) that published a valid one in time (the rest are left out)."""
    validators = [hk for hk in directory.validators() if hk not in skip]

    async def one(hotkey: str):
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await fetch_verdicts(directory, hotkey, window, hp)
        except TimeoutError:
            return None

    docs = await asyncio.gather(*(one(hk) for hk in validators))
    out = {}
    for hotkey, doc in zip(validators, docs, strict=True):
        mine = None if doc is None else doc.of(uid)
        if mine is not None:
            out[hotkey] = mine
    return out


def log_verdicts(window: int, verdicts: dict[str, Verdict]) -> None:
    """One INFO line per validator's verdict on this miner's upload of ``window``."""
    for hotkey, v in sorted(verdicts.items()):
        logger.info("window %d: validator %s: %s", window, hotkey[:8], v)
