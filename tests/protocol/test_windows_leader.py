from template.chain.types import Metagraph, Neuron
from template.hparams import WindowConfig
from template.protocol.leader import leader_candidates, select_leader
from template.protocol.selection import bootstrap_peers, top_peers
from template.protocol.windows import WindowClock, upload_time_verdict


def neuron(uid, hotkey, stake, permit=True):
    return Neuron(uid, hotkey, "cold", stake, permit, 0, 0, 0, 0, 0, 0)


def test_window_arithmetic():
    clock = WindowClock(
        WindowConfig(blocks_per_window=20, upload_blocks=4, grace_blocks=1, publish_blocks=10)
    )
    assert clock.window_of(0) == 0 and clock.window_of(19) == 0 and clock.window_of(20) == 1
    assert clock.start(3) == 60 and clock.end(3) == 80
    assert clock.upload_deadline(3) == 84 and clock.upload_cutoff(3) == 85
    assert clock.publish_deadline(3) == 90


def test_upload_time_verdict():
    assert upload_time_verdict(100.0, window_open_ts=90.0, cutoff_ts=120.0) == "ok"
    assert upload_time_verdict(80.0, window_open_ts=90.0, cutoff_ts=120.0) == "early"
    assert upload_time_verdict(130.0, window_open_ts=90.0, cutoff_ts=120.0) == "late"
    assert upload_time_verdict(121.0, window_open_ts=90.0, cutoff_ts=120.0) == "ok"  # within skew


def test_leader_candidates_by_stake_with_bucket_and_permit():
    mg = Metagraph(
        1,
        0,
        (
            neuron(0, "A", 10.0),
            neuron(1, "B", 50.0),
            neuron(2, "C", 50.0),
            neuron(3, "D", 99.0, permit=False),
            neuron(4, "E", 80.0),
        ),
    )
    assert leader_candidates(mg, {"A", "B", "C", "D"}) == ["B", "C", "A"]
    unstaked = Metagraph(1, 0, (neuron(0, "A", 10.0), neuron(1, "M", 0.0)))
    assert leader_candidates(unstaked, {"A", "M"}) == ["A"]  # a permit alone is not enough


def test_leader_fallback_after_timeout():
    cands = ["B", "C", "A"]
    published = {"B": {0, 1, 2, 3}, "C": {0, 1, 2, 3, 4, 5, 6, 7}}
    assert select_leader(cands, published, window=4, timeout=3) == "B"
    assert select_leader(cands, published, window=6, timeout=3) == "B"  # B published window 3
    assert select_leader(cands, published, window=7, timeout=3) == "C"  # silent for 3 windows
    assert select_leader(cands, {}, window=0, timeout=3) == "B"  # fresh subnet: top candidate
    assert select_leader([], {}, window=5, timeout=3) is None


def test_peer_selection():
    valid = {1: "h1", 2: "h2", 3: "h3", 4: "h4", 5: "h5"}
    scores = {1: 0.5, 2: 0.9, 3: 0.0, 4: 0.9, 5: 0.1}
    chosen, spare = top_peers(scores, valid, count=2, reserves=2)
    assert chosen == [(2, "h2"), (4, "h4")] and spare == [(1, "h1"), (5, "h5")]
    assert bootstrap_peers(valid, 3) == [(1, "h1"), (2, "h2"), (3, "h3")]
