"""The model-free stages of one window, in order: verify (page claims), replay, copies, mix,
free riders. ``screen_window`` runs them on the decoded uploads of ``gather`` and returns
every rejection (a ``Rejection`` per uid) plus the near-duplicate clusters the judge
settles by page fit. Seconds per stage are recorded for the benchmark and the status.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from template.training.pages import PageLayout
from template.training.wire import Upload

from .copies import (
    Cluster,
    CopyRules,
    HeldPrints,
    Print,
    find_clusters,
    find_mixes,
    find_stale_copies,
    join_pairs,
    make_print,
)
from .outcomes import Rejection
from .replay import ReplayMemory, content_digest, index_digest
from .sketch import flatten, l2_norm
from .verify import free_riders, page_claim_rejection
from .watch import Sighting


@dataclass
class Screening:
    """What the model-free stages found in one window."""

    rejected: dict[int, Rejection] = field(default_factory=dict)
    clusters: list[Cluster] = field(default_factory=list)
    prints: dict[int, Print] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # stage -> process CPU seconds

    def reject(self, uid: int, why: Rejection | None) -> None:
        if why is not None:
            self.rejected.setdefault(uid, why)

    @contextmanager
    def stage(self, name: str):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - c0


@contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector (reference counting still frees everything
    these stages make). Their bursts of small arrays trigger collections, each of which walks
    every object the process holds, so with a window cache of decoded uploads the stages grew
    faster than the number of uploads: at 256 tiny uploads 1.54 CPU s with the collector, 0.99
    without (docs/benchmarks.md, "Validator memory")."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@collector_paused()
def screen_window(
    window: int,
    uploads: Mapping[int, Upload],
    *,
    layout: PageLayout,
    replays: ReplayMemory,
    rules: CopyRules,
    salt: int,
    sightings: Mapping[int, Sighting] | None = None,
    aggregate: np.ndarray | None = None,
    freerider_min_norm: float = 0.0,
    page_budget: int = 0,
    trusted: Collection[int] = (),
    earlier: Sequence[HeldPrints] = (),
    proven: Collection[int] = (),
) -> Screening:
    """Run the model-free stages on ``uploads`` (uid -> decoded upload) of ``window``.

    ``salt``: the validator's secret for this window (``copies.window_salt``);
    ``sightings``: uid -> the validator's first sight of the upload (``watch``);
    ``aggregate``: the count sketch, under ``salt``, of the uploads that made the last
    aggregate (``copies.aggregate_sketch``; the mix reference);
    ``page_budget``: the most pages an upload may claim (0: no cap);
    ``trusted``: uids whose training was proven (the last window's peers), the mix check's
    baseline; ``earlier``: the prints of the windows before this one that the validator still
    holds (``copies.HeldPrints``), whose uploads anyone could copy once their keys were out;
    ``proven``: uids whose evidence passed the judge's bar before this window (a proven upload
    close to unproven ones alone is a pair for the judge, ``copies.find_mixes``)."""
    out = Screening()
    with out.stage("verify"):
        for uid, up in uploads.items():
            out.reject(uid, page_claim_rejection(up, layout, window, uid, page_budget))
    with out.stage("replay"):
        digests = {uid: (content_digest(up), index_digest(up)) for uid, up in uploads.items()}
        for uid in uploads:
            out.reject(uid, replays.check(window, digests[uid]))
        for uid in uploads:
            replays.remember(window, uid, digests[uid])
    held = [h for h in earlier if h.window < window]
    with out.stage("sketch"):
        prints, norms = [], {}
        under: list[list[Print]] = [[] for _ in held]  # this window's, under each held salt
        for u in sorted(uploads):  # one vector at a time: a window's are ~6 GB at 150m
            flat = flatten(uploads[u])
            prints.append(make_print(u, digests[u][0], uploads[u], rules, salt, flat=flat))
            for h, mine in zip(held, under, strict=True):
                mine.append(
                    make_print(u, digests[u][0], uploads[u], rules, h.salt, sketch=False, flat=flat)
                )
            norms[u] = l2_norm(flat)
        out.prints = {p.uid: p for p in prints}
    with out.stage("copies"):
        out.clusters = find_clusters(prints, sightings or {}, rules)
        for cluster in out.clusters:
            for uid, why in cluster.rejections().items():
                out.reject(uid, why)
        for uid, why in find_stale_copies(list(zip(held, under, strict=True)), rules).items():
            out.reject(uid, why)
    with out.stage("mix"):
        mixes = find_mixes(prints, out.clusters, rules, aggregate, trusted, proven)
        for uid, why in mixes.rejected.items():
            out.reject(uid, why)
        out.clusters = join_pairs(out.clusters, mixes.pairs, sightings or {})
    with out.stage("free_riders"):
        standing = {u: norms[u] for u in uploads if u not in out.rejected}
        for uid, why in free_riders(standing, freerider_min_norm).items():
            out.reject(uid, why)
    return out
