"""Which uploads are aggregated: the leader's top-G by score, or a bootstrap rule."""

from __future__ import annotations

from collections.abc import Mapping


def top_peers(
    scores: Mapping[int, float], valid: Mapping[int, str], count: int, reserves: int
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The best ``count`` valid uploads by score (ties: lower uid), then ``reserves`` more.

    ``valid`` maps uid -> hotkey for this window's uploads that passed every check; uids
    with a non-positive score are never selected (they contributed nothing measurable).
    """
    ranked = sorted(
        (uid for uid in valid if scores.get(uid, 0.0) > 0), key=lambda u: (-scores[u], u)
    )
    chosen = [(u, valid[u]) for u in ranked[:count]]
    spare = [(u, valid[u]) for u in ranked[count : count + reserves]]
    return chosen, spare


def bootstrap_peers(valid: Mapping[int, str], count: int) -> list[tuple[int, str]]:
    """Before any peer list exists: the ``count`` lowest uids among uploads that pass every
    check a node can make by itself. Deterministic for all nodes that see the same uploads."""
    return [(u, valid[u]) for u in sorted(valid)[:count]]
