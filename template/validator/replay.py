"""Replay memory: an upload whose content was already seen in an earlier window is a replay.

Two digests per upload: the whole content (indices, value codes, codebook) and the index
sets alone (a replay with re-quantised values keeps them). A replay carries a fresh signed
header, so nothing in the protocol's timing ever makes an old delta unacceptable again:
the memory must span the whole run. ``replay_windows(hp)`` derives that span from the
hparams (windows in the learning-rate schedule, ``total_steps / inner_steps``, plus the
windows an upload of the current window is still open for). Digests are stored truncated
to 96 bits (collision odds ~1e-16 even for a full 8b run at 256 uids), so the memory stays
small: two 24-character keys per upload.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from template.hparams import HParams
from template.training.wire import Upload

from .outcomes import RejectCode, Rejection

DIGEST_HEX = 24  # 96 bits


def content_digest(upload: Upload) -> str:
    """sha256 (truncated) over every tensor's indices, value codes and codebook."""
    h = hashlib.sha256()
    for name in sorted(upload.delta.tensors):
        t = upload.delta.tensors[name]
        h.update(name.encode())
        h.update(t.indices.cpu().numpy().tobytes())
        h.update(t.codes.cpu().numpy().tobytes())
        h.update(t.codebook.cpu().numpy().tobytes())
    return h.hexdigest()[:DIGEST_HEX]


def index_digest(upload: Upload) -> str:
    """sha256 (truncated) over the index sets only."""
    h = hashlib.sha256()
    for name in sorted(upload.delta.tensors):
        h.update(name.encode())
        h.update(upload.delta.tensors[name].indices.cpu().numpy().tobytes())
    return "i" + h.hexdigest()[: DIGEST_HEX - 1]


def replay_windows(hp: HParams, configured: int = 0) -> int:
    """Windows the replay memory must cover: every window of the run, at least
    ``configured``. An upload of window w is accepted until its cut-off, inside window w+1,
    so one more window is added."""
    run = math.ceil(hp.train.total_steps / max(1, hp.train.inner_steps))
    open_for = 1 + math.ceil(
        (hp.window.upload_blocks + hp.window.grace_blocks) / hp.window.blocks_per_window
    )
    return max(configured, run + open_for)


class ReplayMemory:
    """Digests of the uploads of the last ``windows`` windows (digest -> (window, uid))."""

    def __init__(self, windows: int, seen: Mapping[str, tuple[int, int]] | None = None):
        self.windows = windows
        self.seen: dict[str, tuple[int, int]] = dict(seen or {})
        self._window: int | None = None

    def check(self, window: int, digests: Sequence[str]) -> Rejection | None:
        for d in digests:
            hit = self.seen.get(d)
            if hit is not None and hit[0] < window:
                return Rejection(
                    RejectCode.REPLAY, f"replay of uid {hit[1]}'s upload of window {hit[0]}"
                )
        return None

    def remember(self, window: int, uid: int, digests: Sequence[str]) -> None:
        """Add ``digests``; the first call of a new window forgets what fell out of the span."""
        if window != self._window:
            self._window = window
            horizon = window - self.windows
            self.seen = {d: wu for d, wu in self.seen.items() if wu[0] > horizon}
        for d in digests:
            self.seen.setdefault(d, (window, uid))
