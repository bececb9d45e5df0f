"""Who leads: the highest-stake validator with a valid bucket commitment, with a fallback.

Every validator publishes its own peer list each window (a heartbeat as much as a
selection). The leader of window w is the first candidate, by stake, that published a
peer list for any of the ``timeout`` windows before w. A leader that goes silent is thus
passed over after ``timeout`` windows, and every node reaches the same answer from the
same chain state and bucket listings, without talking. On a fresh subnet (nobody has
published yet) the top candidate leads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from template.chain.types import Metagraph


def leader_candidates(metagraph: Metagraph, with_bucket: Collection[str]) -> list[str]:
    """Validator hotkeys (a permit and stake > 0) with a valid bucket commitment, by stake.

    Stake is required as well as a permit: a subnet with fewer uids than validator slots
    gives every uid a permit, unstaked miners included.
    """
    vals = [
        n
        for n in metagraph.neurons
        if n.validator_permit and n.stake > 0 and n.hotkey in with_bucket
    ]
    vals.sort(key=lambda n: (-n.stake, n.hotkey))
    return [n.hotkey for n in vals]


def select_leader(
    candidates: list[str], published: Mapping[str, Collection[int]], window: int, timeout: int
) -> str | None:
    """The leader of ``window`` given which windows each candidate published peer lists for."""
    recent = range(max(0, window - timeout), window)
    for hotkey in candidates:
        windows = published.get(hotkey, ())
        if any(w in windows for w in recent):
            return hotkey
    return candidates[0] if candidates else None
