"""What the validator keeps of the windows it has gathered: the last ``KEEP_WINDOWS``.

A window is first *kept* whole (its candidates with their blobs and decoded uploads) while its
work runs: the leader applies its aggregate from the blobs (``sync``), and the peers' uploads
give the next window's mix reference. Once its work is done it is *released*: the decoded
uploads go, and the window keeps

- every candidate with its blob (later aggregates and catch-up are applied from blobs);
- its prints under its own salt (``copies.HeldPrints``) for the stale-copy check, whose exact
  comparisons decode a held blob again (rare: only candidate pairs near the threshold);
- the count sketch of its peers' uploads under the next window's salt (the mix check's "last
  aggregate").

So only the window being worked on is held decoded (about 19 MB an upload at the 150m preset,
against 2.5 MB for a blob); a held window costs its blobs (``training.requirements``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from template.hparams import HParams
from template.training.wire import Upload, upload_size_cap

from .copies import CopyRules, HeldPrints, Print, aggregate_sketch, make_print, window_salt
from .gather import MISSING, Candidate
from .outcomes import Rejection
from .verify import decode_checked

KEEP_WINDOWS = 3  # windows of gathered uploads kept (peer lists, stale-copy checks)

# the upload in a held candidate's blob (it was decoded once: the same bytes decode again)
Decode = Callable[[Candidate, int], Upload]


def blob_decoder(hp: HParams, shapes: Mapping[str, tuple[int, ...]]) -> Decode:
    """Decode a held candidate's blob again, with the checks it passed when gathered."""
    cap = upload_size_cap(shapes, hp.compression)

    def decode(c: Candidate, window: int) -> Upload:
        got = decode_checked(
            c.blob, window=window, uid=c.uid, hotkey=c.hotkey, hp=hp, shapes=shapes, cap=cap
        )
        if isinstance(got, Rejection):
            raise RuntimeError(f"window {window}: uid {c.uid}'s held blob no longer decodes: {got}")
        return got

    return decode


@dataclass
class HeldWindow:
    window: int
    candidates: dict[int, Candidate]
    prints: HeldPrints | None = None  # None: kept, not yet released


class WindowCache:
    """The gathered windows a validator holds (see the module docstring)."""

    def __init__(self, secret: str, rules: CopyRules, decode: Decode) -> None:
        self.secret, self.rules, self.decode = secret, rules, decode
        self.windows: dict[int, HeldWindow] = {}
        self.aggregates: dict[int, np.ndarray | None] = {}  # window -> its mix reference

    def __bool__(self) -> bool:
        return bool(self.windows)

    def candidates(self, window: int) -> dict[int, Candidate]:
        held = self.windows.get(window)
        return {} if held is None else held.candidates

    def candidate(self, window: int, uid: int) -> Candidate | None:
        return self.candidates(window).get(uid)

    def active(self) -> set[int]:
        """The uids that uploaded something (rejected or not) in a held window."""
        return {
            c.uid
            for h in self.windows.values()
            for c in h.candidates.values()
            if c.reason != MISSING
        }

    def earlier(self, window: int) -> list[HeldPrints]:
        """The released windows before ``window``, for the stale-copy check."""
        return [
            h.prints for w, h in sorted(self.windows.items()) if w < window and h.prints is not None
        ]

    def aggregate(self, window: int) -> np.ndarray | None:
        """The count sketch, under ``window``'s salt, of window - 1's peers' uploads."""
        return self.aggregates.get(window)

    def keep(self, window: int, candidates: Iterable[Candidate]) -> None:
        """Hold ``window``'s candidates whole until ``release``; forget windows too old."""
        self.windows[window] = HeldWindow(window, {c.uid: c for c in candidates})
        for old in [w for w in self.windows if w <= window - KEEP_WINDOWS]:
            del self.windows[old]

    def release(
        self, window: int, peers: Sequence[int], prints: Mapping[int, Print] | None = None
    ) -> None:
        """Drop ``window``'s decoded uploads, keeping its prints and its peers' sketch.

        ``peers``: the uids of this validator's peer list of ``window`` (the next window's mix
        reference); ``prints``: the screening's, under ``window``'s salt (None: made here, as
        after a restart)."""
        held = self.windows.get(window)
        if held is None:
            return
        salt = window_salt(self.secret, window)
        decoded = {u: c for u, c in held.candidates.items() if c.upload is not None}
        if prints is None:
            prints = {
                u: make_print(u, "", c.upload, self.rules, salt, sketch=False)
                for u, c in decoded.items()
            }
        ok = [decoded[u].upload for u in peers if u in decoded and decoded[u].reason is None]
        self.aggregates = {
            window + 1: aggregate_sketch(ok, self.rules, window_salt(self.secret, window + 1))
        }
        kept = tuple(
            p.held(window, functools.partial(self.decode, decoded[u], window))
            for u, p in sorted(prints.items())
            if u in decoded
        )
        held.prints = HeldPrints(window, salt, kept)
        for c in decoded.values():
            c.upload = None
