"""Copy and mix detection without a model, near-linear in the number of uploads.

Three questions per window:

1. **Who is near whom** (``find_clusters``). Candidate pairs come from byte-identical
   digests and from LSH banding of MinHash signatures of the index sets; only candidates
   whose MinHash Jaccard estimate comes near the threshold are compared exactly (shared indices / the smaller set, and the cosine of the values on
   the shared indices). Linked uploads form clusters. Priority inside a cluster is never
   taken from the miner's storage clock: a member is *provably later* than a linked member
   only when the validator saw the other's final content at a time it had itself checked
   that this member's final content was not there yet (``watch.Sighting``). A copy can
   never be provably earlier than its original (it cannot exist before the original is
   readable), so an honest original is never rejected for being copied. Members whose order
   cannot be proven are left to the judge (which uploader's assigned pages the content fits).
2. **Who is a mix of others** (``find_mixes``). Each upload's count sketch is compared with
   the sum of every other upload of the window outside its own cluster (leave-one-out; each
   other cluster counts once, as its mean) and with the last aggregate. Mixers are peeled one
   at a time, most similar first, so a swarm of mixers cannot make honest uploads look like
   mixes of the mixers. The bar rises with what the last window's peers reach, so a large
   honest crowd (whose members all lean towards its common direction) is not a mix.
3. **Who re-sent another uid's earlier upload** (``find_stale_copies``): the links of
   question 1 between this window's uploads and other uids' uploads of the windows the
   validator still holds (the last three). A held window keeps only its prints, under its own
   salt (``HeldPrints``): this window's uploads are MinHashed again under each held salt while
   their vectors are at hand, and a held upload is decoded from its blob again only for an
   exact comparison.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from template.training.wire import Upload

from .outcomes import RejectCode, Rejection
from .sketch import (
    FlatUpload,
    cosine,
    count_sketch,
    flatten,
    minhash,
    minhash_agreement,
    salt_of,
    shared_overlap_and_cosine,
)
from .watch import Sighting


@dataclass(frozen=True)
class CopyRules:
    """Thresholds (see docs/scoring.md, "Model-free checks at scale", for the measurements)."""

    overlap: float = 0.7  # near-duplicate: shared indices / the smaller index set
    similarity: float = 0.8  # ... and cosine of the values on the shared indices
    mix_cosine: float = 0.55  # sketch cosine to the leave-one-out sum of the others ...
    mix_margin: float = 0.15  # ... and this far above the window's lower quartile of it
    aggregate_cosine: float = 0.5  # sketch cosine to the last aggregate
    bins: int = 256  # MinHash bins (a power of two)
    rows: int = 4  # LSH: bins per band (bands = bins // rows)
    slack: float = 0.15  # exact comparison when the MinHash Jaccard estimate is this close
    sketch_width: int = 1 << 14  # count-sketch buckets (cosine error ~ 1/sqrt(width))

    def jaccard_floor(self, na: int, nb: int) -> float:
        """The Jaccard similarity of index sets of sizes na, nb at the overlap threshold."""
        shared = self.overlap * min(na, nb)
        union = na + nb - shared
        return shared / union if union > 0 else 1.0


@dataclass(frozen=True)
class Print:
    """What the copy and mix checks keep of one upload: fixed-size summaries and a way to get
    the upload back, never its vector (``exact`` makes it again for the rare exact comparison;
    a window's vectors would be 256 x 25 MB at the 150m preset, 256 x 207 MB at 1b)."""

    uid: int
    digest: str  # content digest: byte-identical payloads share it
    load: Callable[[], Upload]  # the upload (in memory, or decoded again from a held blob)
    nnz: int  # size of the index set
    signature: np.ndarray  # MinHash of the index set
    sketch: np.ndarray | None  # count sketch of the values (None: links only, no mix check)

    def exact(self) -> FlatUpload:
        """The upload's sparse vector, for an exact comparison."""
        return flatten(self.load())

    def held(self, window: int, load: Callable[[], Upload]) -> Print:
        """This print as kept once its window is done: links only, loading its upload with
        ``load`` (from the blob), and a tag of its own instead of the content digest (a
        byte-identical resend is the replay stage's; identical index sets still share every
        LSH band)."""
        return replace(self, digest=f"held:{window}:{self.uid}", load=load, sketch=None)


def make_print(
    uid: int,
    digest: str,
    upload: Upload,
    rules: CopyRules,
    salt: int,
    *,
    sketch: bool = True,
    flat: FlatUpload | None = None,
) -> Print:
    """One upload's print; ``salt`` is the validator's per-window secret (``window_salt``).
    ``sketch=False``: only what the links need (the last window's uploads, stale copies);
    ``flat``: the upload's vector when the caller has made it already (it is not kept)."""
    flat = flatten(upload) if flat is None else flat
    return Print(
        uid,
        digest,
        lambda: upload,
        flat.nnz,
        minhash(flat.indices, salt_of(salt, "minhash"), rules.bins),
        count_sketch(flat, salt_of(salt, "sketch"), rules.sketch_width) if sketch else None,
    )


def window_salt(secret: str, window: int) -> int:
    """The copy and mix checks' hash salt for ``window`` from the validator's sampling secret
    (secret.py): a miner who cannot predict it cannot shape an upload to miss the sketches."""
    return salt_of("copies", secret, window)


@dataclass(frozen=True)
class HeldPrints:
    """The prints of an earlier window the validator still holds, under that window's salt
    (the MinHash a print got in its own window; ``Print.held``)."""

    window: int
    salt: int
    prints: tuple[Print, ...]


@dataclass(frozen=True)
class Link:
    """Two uploads found near each other (a < b by uid)."""

    a: int
    b: int
    overlap: float
    similarity: float
    identical: bool

    def __str__(self) -> str:
        if self.identical:
            return f"uids {self.a} and {self.b}: byte-identical payload"
        return (
            f"uids {self.a} and {self.b}: index overlap {self.overlap:.2f}, "
            f"value similarity {self.similarity:.2f}"
        )


@dataclass(frozen=True)
class Cluster:
    """Near-duplicate uploads of one window, in the validator's first-seen order (and the mix
    check's pairs, ``join_pairs``: members left to the judge, never rejected for each other)."""

    uids: tuple[int, ...]  # seen earliest first; members the watcher never saw last
    links: tuple[Link, ...]
    first_seen: dict[int, float | None]  # validator clock (time.time()), None: not watched
    provably_later: dict[int, int]  # member -> a linked member visible while it was not

    def rejections(self) -> dict[int, Rejection]:
        """DUPLICATE for members provably later than a linked member; the rest: the judge's."""
        return {
            uid: Rejection(
                RejectCode.DUPLICATE,
                f"near copy of uid {first}, which the validator saw first",
            )
            for uid, first in self.provably_later.items()
        }

    @property
    def undecided(self) -> tuple[int, ...]:
        """Members whose priority the clocks cannot settle (the judge decides by page fit)."""
        return tuple(u for u in self.uids if u not in self.provably_later)


def candidate_pairs(prints: Sequence[Print], rules: CopyRules) -> set[tuple[int, int]]:
    """Pairs (i, j), i < j positions in ``prints``, sharing a digest or an LSH band."""
    buckets: dict[object, list[int]] = defaultdict(list)
    for i, p in enumerate(prints):
        buckets[("digest", p.digest)].append(i)
        for b in range(rules.bins // rules.rows):
            band = p.signature[b * rules.rows : (b + 1) * rules.rows]
            if (band == np.iinfo(np.uint64).max).all():
                continue
            buckets[(b, band.tobytes())].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in buckets.values():
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                pairs.add((i, j))
    return pairs


class Vectors:
    """Makes prints' vectors for exact comparisons, keeping the ``keep`` used last (candidate
    pairs come sorted, so one upload's comparisons come together)."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.made: dict[tuple[int, str], FlatUpload] = {}

    def __call__(self, p: Print) -> FlatUpload:
        key = (p.uid, p.digest)
        flat = self.made.pop(key, None)
        if flat is None:
            flat = p.exact()
            if len(self.made) >= self.keep:
                del self.made[next(iter(self.made))]  # the least recently used
        self.made[key] = flat
        return flat


def link(a: Print, b: Print, rules: CopyRules, vectors: Vectors | None = None) -> Link | None:
    """The near-duplicate link between two candidate prints, or None (exact comparison once
    the MinHash estimate comes near the threshold)."""
    if a.uid > b.uid:
        a, b = b, a
    if a.digest == b.digest:
        return Link(a.uid, b.uid, 1.0, 1.0, True)
    est = minhash_agreement(a.signature, b.signature)
    if est < rules.jaccard_floor(a.nnz, b.nnz) - rules.slack:
        return None
    vectors = vectors or Vectors()
    ov, sim = shared_overlap_and_cosine(vectors(a), vectors(b))
    if ov >= rules.overlap and sim >= rules.similarity:
        return Link(a.uid, b.uid, ov, sim, False)
    return None


def find_links(prints: Sequence[Print], rules: CopyRules) -> list[Link]:
    """Every near-duplicate pair among the candidates (exact comparison)."""
    vectors = Vectors()
    pairs = sorted(candidate_pairs(prints, rules))
    found = (link(prints[i], prints[j], rules, vectors) for i, j in pairs)
    return [lk for lk in found if lk is not None]


def find_stale_copies(
    held: Sequence[tuple[HeldPrints, Sequence[Print]]], rules: CopyRules
) -> dict[int, Rejection]:
    """uid -> DUPLICATE for uploads near another uid's upload of an earlier window. ``held``:
    per held window, its prints and this window's prints under that window's salt. Those
    uploads' keys were revealed before this window's cut-off, so anyone could copy one, move
    some indices and sign it as new work (the replay memory catches only exact and
    re-quantised copies). A miner's own earlier upload is not compared (sending it again is
    the replay memory's case); a miner's consecutive uploads share only 3-10% of their
    indices (small test preset), so a copy of its last upload does not link its next one."""
    out: dict[int, Rejection] = {}
    vectors = Vectors()
    for old, now in sorted(held, key=lambda h: -h[0].window):  # the newest linked window names
        both, n = [*old.prints, *now], len(old.prints)
        for i, j in sorted(candidate_pairs(both, rules)):
            if not i < n <= j or both[i].uid == both[j].uid or both[j].uid in out:
                continue
            if (lk := link(both[i], both[j], rules, vectors)) is not None:
                out[both[j].uid] = Rejection(
                    RejectCode.DUPLICATE,
                    f"near copy of uid {both[i].uid}'s upload of window {old.window} "
                    f"(index overlap {lk.overlap:.2f}, value similarity {lk.similarity:.2f})",
                )
    return out


def _groups(uids: Sequence[int], links: Sequence[Link]) -> list[list[int]]:
    parent = {u: u for u in uids}

    def root(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for link in links:
        parent[root(link.a)] = root(link.b)
    groups: dict[int, list[int]] = defaultdict(list)
    for u in uids:
        groups[root(u)].append(u)
    return [g for g in groups.values() if len(g) > 1]


def _provably_before(x: Sighting | None, y: Sighting | None) -> bool:
    """x's content was visible while the validator had checked y's was not."""
    if x is None or y is None or y.absent_before is None:
        return False
    return x.first_seen < y.absent_before


def _seen_order(
    uids: Collection[int], sightings: Mapping[int, Sighting]
) -> tuple[tuple[int, ...], dict[int, float | None]]:
    """(``uids`` in the validator's first-seen order, unseen last; uid -> first-seen time)."""
    seen = {u: (s.first_seen if (s := sightings.get(u)) else None) for u in uids}
    return tuple(sorted(uids, key=lambda u: (seen[u] is None, seen[u] or 0.0, u))), seen


def find_clusters(
    prints: Sequence[Print], sightings: Mapping[int, Sighting], rules: CopyRules
) -> list[Cluster]:
    """Clusters of near-duplicate uploads with what the validator's own clock can prove."""
    links = find_links(prints, rules)
    out = []
    for group in _groups([p.uid for p in prints], links):
        members = set(group)
        mine = tuple(lk for lk in links if lk.a in members)
        later: dict[int, int] = {}
        for lk in mine:
            for x, y in ((lk.a, lk.b), (lk.b, lk.a)):
                if _provably_before(sightings.get(x), sightings.get(y)):
                    later.setdefault(y, x)
        order, seen = _seen_order(group, sightings)
        out.append(Cluster(order, mine, seen, later))
    return sorted(out, key=lambda c: c.uids[0])


def join_pairs(
    clusters: Sequence[Cluster], pairs: Sequence[tuple[int, int]], sightings: Mapping[int, Sighting]
) -> list[Cluster]:
    """``clusters`` with the mix check's ``pairs`` joined in: a pair becomes a cluster of its
    own, or joins a cluster that holds one of its members. A pair's members are not copies of
    each other (the copy links did not join them), so neither is ever provably later."""
    groups = [set(c.uids) for c in clusters] + [set(p) for p in pairs]
    merged: list[set[int]] = []
    for g in groups:
        for m in [m for m in merged if m & g]:
            merged.remove(m)
            g |= m
        merged.append(g)
    out = []
    for g in merged:
        parts = [c for c in clusters if set(c.uids) <= g]
        if len(parts) == 1 and set(parts[0].uids) == g:
            out.append(parts[0])
            continue
        order, seen = _seen_order(g, sightings)
        links = tuple(lk for c in parts for lk in c.links)
        later = {u: v for c in parts for u, v in c.provably_later.items()}
        out.append(Cluster(order, links, seen, later))
    return sorted(out, key=lambda c: c.uids[0])


@dataclass(frozen=True)
class MixFinding:
    uid: int
    loo_cosine: float  # to the sum of the others outside its cluster
    aggregate_cosine: float | None  # to the last aggregate (None: none known)


def mix_scores(
    prints: Sequence[Print], clusters: Sequence[Cluster], aggregate: np.ndarray | None
) -> dict[int, MixFinding]:
    """Each upload's cosines to the leave-one-cluster-out sum and to the last aggregate."""
    return _mix_pass(prints, clusters, aggregate, flagged=set())


def _mix_pass(prints, clusters, aggregate, flagged) -> dict[int, MixFinding]:
    """One pass: a matrix-vector product against the live total, O(uploads x width).

    Each near-duplicate cluster counts once in the total (its members' mean): copies add no
    information, and a copier that duplicated honest uploads would otherwise inflate every
    honest upload's cosine to the others towards the mix threshold."""
    live = [p for p in prints if p.uid not in flagged]
    if not live:
        return {}
    row = {p.uid: i for i, p in enumerate(live)}
    mat = np.stack([p.sketch for p in live]).astype(np.float64)
    sq = np.einsum("ij,ij->i", mat, mat)
    groups = [m for c in clusters if len(m := [row[u] for u in c.uids if u in row]) > 1]
    total = mat.sum(0)
    means = {}
    for members in groups:
        mean = mat[members].mean(0)
        total -= mat[members].sum(0) - mean
        means.update((i, mean) for i in members)
    t_dot = mat @ total
    own_dot, own_t, own_sq = sq.copy(), t_dot.copy(), sq.copy()  # each row's part of the total
    for i, mean in means.items():
        own_dot[i], own_t[i], own_sq[i] = mat[i] @ mean, total @ mean, mean @ mean
    others_sq = np.maximum(0.0, float(total @ total) - 2 * own_t + own_sq)
    den = np.sqrt(sq * others_sq)
    loo = np.divide(t_dot - own_dot, den, out=np.zeros(len(live)), where=den > 0)
    return {
        p.uid: MixFinding(
            p.uid, float(loo[i]), None if aggregate is None else cosine(p.sketch, aggregate)
        )
        for i, p in enumerate(live)
    }


@dataclass
class Mixes:
    """What the mix check found: rejections, and pairs it cannot order (for the judge)."""

    rejected: dict[int, Rejection] = field(default_factory=dict)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (close upload, its partner)


def find_mixes(
    prints: Sequence[Print],
    clusters: Sequence[Cluster],
    rules: CopyRules,
    aggregate: np.ndarray | None = None,
    trusted: Collection[int] = (),
    proven: Collection[int] = (),
) -> Mixes:
    """MIX_OF_OTHERS for uploads close to the others' sum or to the last aggregate.

    Close to the others' sum: cosine >= ``mix_cosine`` and >= a baseline + ``mix_margin``.
    Honest uploads share a common direction, so their own cosine grows with the number of
    uploads (towards the square root of the honest pairwise cosine); the relative condition
    keeps that growth from flagging them; the absolute one keeps an honest upload that merely
    stands out from its peers (far from any mix) from being flagged. The baseline is the
    window's lower quartile, or the median over ``trusted`` (uids whose training was proven:
    the last window's peers) when that is higher: uploads that share no direction (random or
    zero deltas, which cost nothing to send) can fill the lower quartile and must not lower
    the bar under honest uploads.

    Peels the most similar upload first and recomputes without it, so honest uploads are
    judged against a sum that holds no flagged mix (a swarm of mixers cannot make the honest
    uploads they average look like mixes of the mixers).

    An upload whose closeness comes from one other upload alone (below the bar once that
    partner is left out too) is not a mix of many but one of a *pair*, and the sketches cannot
    tell which of the two leans on the other: a miner that trains on an honest miner's
    (public) pages makes that miner look like a mix of it. Such a pair is not rejected; it
    goes to the judge, which settles it by page fit as it settles near-duplicates.

    The same holds for a ``proven`` upload (its uid's evidence passed the judge's bar before
    this window) whose closeness comes from unproven uploads alone (below the bar against the
    proven others' sum): several shadows that each train a share of a proven miner's pages make
    it close to their sum but to none of them. It is paired with the nearest unproven upload
    instead of rejected; a proven mixer of proven uploads is still close to their sum."""
    out = Mixes()
    proven = set(proven)
    if not prints:
        return out
    flagged: set[int] = set()
    if aggregate is not None:
        for p in prints:
            c = cosine(p.sketch, aggregate)
            if c >= rules.aggregate_cosine:
                flagged.add(p.uid)
                out.rejected[p.uid] = Rejection(
                    RejectCode.MIX_OF_OTHERS, f"close to the last aggregate (cosine {c:.2f})"
                )
    while True:
        scores = _mix_pass(prints, clusters, None, flagged)
        if not scores:
            return out
        worst = max(scores.values(), key=lambda f: f.loo_cosine)
        bar = max(rules.mix_cosine, mix_baseline(scores, trusted) + rules.mix_margin)
        if worst.loo_cosine < bar:
            return out
        flagged.add(worst.uid)  # only this one: a linked honest upload is judged on its own
        partner = _closest(prints, clusters, flagged, worst.uid)
        if partner is not None:
            alone = _mix_pass(prints, clusters, None, (flagged - {worst.uid}) | {partner})
            if alone[worst.uid].loo_cosine < bar:
                out.pairs.append((worst.uid, partner))
                continue
        if worst.uid in proven:
            unproven = {p.uid for p in prints if p.uid not in proven}
            among = _mix_pass(prints, clusters, None, (flagged - {worst.uid}) | unproven)
            nearest = _closest(prints, clusters, flagged | (proven - {worst.uid}), worst.uid)
            if nearest is not None and among[worst.uid].loo_cosine < bar:
                out.pairs.append((worst.uid, nearest))
                continue
        out.rejected[worst.uid] = Rejection(
            RejectCode.MIX_OF_OTHERS,
            f"close to the sum of this window's other uploads (cosine {worst.loo_cosine:.2f})",
        )


def _closest(
    prints: Sequence[Print], clusters: Sequence[Cluster], flagged: Collection[int], uid: int
) -> int | None:
    """The live upload outside ``uid``'s cluster whose sketch is most similar to ``uid``'s."""
    mine = next((set(c.uids) for c in clusters if uid in c.uids), {uid})
    sketch = next(p.sketch for p in prints if p.uid == uid).astype(np.float64)
    others = [p for p in prints if p.uid not in flagged and p.uid not in mine]
    if not others:
        return None
    mat = np.stack([p.sketch for p in others]).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", mat, mat))
    cos = np.divide(mat @ sketch, norms, out=np.full(len(others), -np.inf), where=norms > 0)
    return others[int(np.argmax(cos))].uid


def mix_baseline(scores: Mapping[int, MixFinding], trusted: Collection[int] = ()) -> float:
    """The cosine to the others' sum that honest uploads reach this window: the lower
    quartile over every live upload, or the median over the live ``trusted`` ones if higher."""
    base = float(np.quantile([f.loo_cosine for f in scores.values()], 0.25))
    proven = [scores[u].loo_cosine for u in trusted if u in scores]
    return max(base, float(np.median(proven))) if proven else base


def aggregate_sketch(peers: Sequence[Upload], rules: CopyRules, salt: int) -> np.ndarray | None:
    """The sketch (under this window's ``salt``) of the sum of the last aggregate's peers,
    flattened one at a time (15 peers' vectors are 0.4 GB at 150m)."""
    if not peers:
        return None
    key = salt_of(salt, "sketch")
    return sum(count_sketch(flatten(u), key, rules.sketch_width) for u in peers)
