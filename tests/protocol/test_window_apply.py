"""One consensus path: the miner (``miner/sync.py``, trainer jobs) and the validator
(``validator/sync.py``, in place) apply the same windows through ``protocol/window_apply.py``
and end with bit-identical models.

The windows exercise every basis: the leader's peer list (in its order, one listed upload
missing), the bootstrap rule (a late and a garbled upload left out, lowest uids first) and
the leader's aggregate for a node that is behind. Storage and chain are in-memory fakes, so
the test is fast and never waits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import torch

from template.hparams import hparams_hash, load_hparams
from template.miner.sync import Sync
from template.miner.trainer import Trainer
from template.protocol.aggregation import apply_uploads, decode_peer_uploads
from template.protocol.documents import (
    Aggregate,
    Checkpoint,
    Fingerprint,
    PeerList,
    encode_aggregate,
    encode_checkpoint,
    encode_fingerprint,
    encode_latest,
    encode_peer_list,
)
from template.protocol.fingerprint import model_fingerprint
from template.protocol.uploads import stored_objects
from template.protocol.window_apply import InPlaceModel, WindowApplier
from template.protocol.windows import WindowClock
from template.signing import dev_keypair
from template.storage import ObjectNotFound, ObjectTooLarge, keys
from template.storage.client import FetchedObject, ObjectInfo
from template.training.compression import Compressor
from template.training.model import build_model, param_shapes
from template.training.wire import encode_upload
from template.validator.state import ValidatorState
from template.validator.sync import ValidatorSync

HP = load_hparams("tiny").replace(
    **{
        "model.hidden_size": 32,
        "model.intermediate_size": 64,
        "model.num_layers": 1,
        "model.num_heads": 2,
        "model.num_kv_heads": 2,
        "model.seq_len": 16,
        "compression.chunk": 256,
        "compression.topk": 16,
        "window.blocks_per_window": 10,
        "window.upload_blocks": 3,
        "window.grace_blocks": 1,
        "window.reveal_blocks": 2,
        "window.publish_blocks": 7,
        "window.peers_per_window": 2,
        "window.reserve_peers": 0,
    }
)
CLOCK = WindowClock(HP.window)
BASIS = {0: "leader", 1: "bootstrap", 2: "aggregate", 3: "leader"}


def stamp(block: int) -> float:
    return 1_000_000.0 + 12.0 * block


class Bucket:
    """An in-memory bucket with the read calls the consensus path makes."""

    def __init__(self):
        self.objects: dict[str, tuple[bytes, float]] = {}

    def put(self, key: str, data: bytes, block: int) -> None:
        self.objects[key] = (data, stamp(block))

    def _find(self, key: str, max_bytes: int) -> tuple[bytes, float]:
        if key not in self.objects:
            raise ObjectNotFound(key)
        data, when = self.objects[key]
        if len(data) > max_bytes:
            raise ObjectTooLarge(key)
        return data, when

    async def get_bytes(self, key: str, max_bytes: int, **_) -> bytes:
        return self._find(key, max_bytes)[0]

    async def get(self, key: str, max_bytes: int, **_) -> FetchedObject:
        data, when = self._find(key, max_bytes)
        info = ObjectInfo(key, len(data), datetime.fromtimestamp(when, UTC), "etag")
        return FetchedObject(data, info)

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def put_bytes(self, key: str, data: bytes) -> None:
        self.objects[key] = (data, 0.0)


class Directory:
    """Stands in for PeerDirectory: one leader candidate, four miners (uids 1..4)."""

    def __init__(self, leader: str, miners: list[tuple[int, str]]):
        self.leaders, self._miners = [leader], miners  # leader candidates, by stake
        self.buckets = {hk: Bucket() for hk in [leader, *(hk for _, hk in miners)]}
        self.opened: dict[tuple[str, int], tuple[bytes, float]] = {}  # a gather's opened uploads

    def client(self, hotkey: str) -> Bucket | None:
        return self.buckets.get(hotkey)

    def validators(self) -> list[str]:
        return list(self.leaders)

    def miners(self) -> list[tuple[int, str]]:
        return list(self._miners)

    async def refresh(self) -> None:
        return None


class FakeClock:
    """The miner's BlockClock, frozen at ``block``."""

    block_time = 0.01

    def __init__(self):
        self.block = 0

    def block_now(self) -> float:
        return float(self.block)

    async def timestamp(self, block: int) -> float:
        return stamp(block)


def upload(key, uid: int, window: int, seed: int) -> bytes:
    gen = torch.Generator().manual_seed(seed)
    shapes = param_shapes(build_model(HP.model))
    delta = {n: torch.randn(s, generator=gen) * 0.01 for n, s in shapes.items()}
    return encode_upload(
        Compressor(HP.compression).compress(delta),
        window=window,
        uid=uid,
        hparams_hash=hparams_hash(HP),
        config=HP.compression,
        key=key,
    )


def build_network():
    leader = dev_keypair("//Alice//leader")
    miners = {uid: dev_keypair(f"//Alice//miner{uid}") for uid in (1, 2, 3, 4)}
    net = Directory(leader.ss58_address, [(u, k.ss58_address) for u, k in miners.items()])
    run = hparams_hash(HP)
    blobs: dict[tuple[int, int], bytes] = {}

    def put_upload(uid: int, window: int, block: int, data: bytes | None = None) -> None:
        data = data or upload(miners[uid], uid, window, seed=100 * window + uid)
        blobs[(window, uid)] = data
        hotkey = miners[uid].ss58_address
        for name, content in stored_objects(data, window=window, hotkey=hotkey):
            net.buckets[hotkey].put(name, content, block)
        net.opened[(hotkey, window)] = (data, stamp(block))

    def peers(*uids: int) -> tuple[tuple[int, str], ...]:
        return tuple((u, miners[u].ss58_address) for u in uids)

    on_time = CLOCK.end(0) + 1
    # window 0: the leader's list, in its order (2 before 1)
    for uid in (1, 2, 3, 4):
        put_upload(uid, 0, on_time)
    doc = PeerList(0, peers(2, 1), (), "scores", run)
    net.buckets[leader.ss58_address].put(keys.peers_key(0), encode_peer_list(doc, leader), 15)
    # window 1: no list; uid 1 garbled, uid 3 late -> bootstrap picks uids 2 and 4
    put_upload(1, 1, CLOCK.end(1) + 1, data=b"\x00" * 64)
    put_upload(2, 1, CLOCK.end(1) + 1)
    put_upload(3, 1, CLOCK.upload_cutoff(1) + 5)
    put_upload(4, 1, CLOCK.end(1) + 2)
    # window 2: only the leader's aggregate (the miners' buckets lost their uploads)
    agg_blobs = (upload(miners[3], 3, 2, seed=203), upload(miners[4], 4, 2, seed=204))
    agg = Aggregate(2, peers(3, 4), agg_blobs, run)
    net.buckets[leader.ss58_address].put(keys.aggregate_key(2), encode_aggregate(agg, leader), 35)
    blobs[(2, 3)], blobs[(2, 4)] = agg_blobs
    # window 3: the list names uid 1, whose upload is missing, and uid 4
    put_upload(4, 3, CLOCK.end(3) + 1)
    doc = PeerList(3, peers(1, 4), (), "scores", run)
    net.buckets[leader.ss58_address].put(keys.peers_key(3), encode_peer_list(doc, leader), 45)
    expected = {0: peers(2, 1), 1: peers(2, 4), 2: peers(3, 4), 3: peers(4)}
    return net, blobs, expected


def replay(blobs, expected) -> torch.nn.Module:
    """The model every node must hold: the expected peers' uploads applied window by window."""
    model = build_model(HP.model)
    shapes = param_shapes(model)
    for a, peers in sorted(expected.items()):
        data = [blobs[(a, uid)] for uid, _ in peers]
        apply_uploads(model, decode_peer_uploads(data, list(peers), a, HP, shapes), HP)
    return model


class FakeChain:
    """What the validator's sync reads from the chain: the block and block timestamps."""

    def __init__(self):
        self.now = 0

    async def block(self) -> int:
        return self.now

    async def block_timestamp(self, block: int) -> float:
        return stamp(block)


async def run_both(net, expected) -> tuple[Trainer, torch.nn.Module, list[int], list[int]]:
    """The miner's Sync and the validator's ValidatorSync, window by window."""
    trainer = Trainer(HP, build_model(HP.model), dataset=None, uid=9)  # no training here
    clock = FakeClock()
    miner = Sync(HP, net, trainer, clock)
    chain = FakeChain()

    def held(window: int, uid: int, hotkey: str):
        """The validator's own gather of window 1 (same bytes and stamps as the buckets)."""
        found = net.opened.get((hotkey, window))
        return found if window == 1 and found is not None else None

    model = build_model(HP.model)
    validator = ValidatorSync(
        HP,
        chain,
        dev_keypair("//Alice//follower"),
        net,
        bucket=None,  # a follower publishes nothing while catching up
        model=model,
        state=ValidatorState(applied_through=-1),
        follow_wait=0.0,
        held=held,
        on_change=lambda: None,
    )
    miner_counts, validator_counts = [], []
    for a in sorted(expected):
        # window 2 is met "behind" (after end(a + 1)); the others just after their cut-off,
        # with the peer list polled until end(a + 1) (already reached for window 1)
        clock.block = chain.now = CLOCK.end(a + 2) if a == 2 else CLOCK.end(a + 1)
        await miner.apply_window(a)
        miner_counts.append(miner.applier.peers_applied)
        await validator.advance_to(a)  # the validator's catch-up at the start of window a + 1
        validator_counts.append(validator.applier.peers_applied)
    await miner.close()
    return trainer, model, miner_counts, validator_counts


def test_miner_and_validator_apply_the_same_windows_bit_identically(caplog):
    caplog.set_level(logging.INFO, logger="template.protocol.window_apply")
    net, blobs, expected = build_network()
    trainer, model, miner_counts, validator_counts = asyncio.run(run_both(net, expected))
    assert miner_counts == validator_counts == [2, 2, 2, 1]
    bases = [
        r.getMessage().rsplit("(", 1)[1].rstrip(")")
        for r in caplog.records
        if "applied" in r.getMessage()
    ]
    assert bases == [b for a in sorted(BASIS) for b in (BASIS[a], BASIS[a])]  # miner, validator
    assert trainer.applied_through == 3
    reference = replay(blobs, expected)
    live = dict(trainer.model.named_parameters())
    on_validator = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        assert torch.equal(trainer.global_model.get_parameter(name), on_validator[name]), name
        assert torch.equal(on_validator[name], p), name
        assert torch.equal(live[name], p), name  # the live weights got the same outer steps
    assert not torch.equal(next(reference.parameters()), next(build_model(HP.model).parameters()))


def publish_checkpoint(net: Directory, key, model: torch.nn.Module, window: int) -> None:
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    doc = Checkpoint(window, tuple(model_fingerprint(model)), params, hparams_hash(HP))
    bucket = net.buckets[key.ss58_address]
    bucket.put(keys.checkpoint_key(window), encode_checkpoint(doc, key), 50)
    bucket.put(
        keys.latest_checkpoint_key(), encode_latest(window, keys.checkpoint_key(window), key), 50
    )


def test_a_node_that_disagrees_never_resyncs_from_its_own_checkpoint():
    """A validator that drifted and then led a window published a checkpoint of its drifted
    model; when the leader's fingerprint tells it so, it must rebuild from the others'."""
    net, blobs, expected = build_network()
    leader, me = dev_keypair("//Alice//leader"), dev_keypair("//Alice//drifted")
    net.leaders.insert(0, me.ss58_address)  # more stake: its checkpoint would win a tie
    net.buckets[me.ss58_address] = Bucket()
    reference = replay(blobs, expected)
    drifted = build_model(HP.model)
    with torch.no_grad():
        for p, q in zip(drifted.parameters(), reference.parameters(), strict=True):
            p.copy_(q + 0.01)
    publish_checkpoint(net, leader, reference, 3)
    publish_checkpoint(net, me, drifted, 3)

    async def resync(hotkey: str) -> torch.nn.Module:
        model = build_model(HP.model)
        applier = WindowApplier(
            HP, net, InPlaceModel(model, 3), param_shapes(model), block=None, timestamp=None,
            hotkey=hotkey,
        )  # fmt: skip
        assert await applier.resync(3) == 3
        return model

    mine = asyncio.run(resync(me.ss58_address))
    anyone = asyncio.run(resync("someone else"))  # the tie goes to the higher stake
    for (name, p), q, r in zip(
        reference.named_parameters(), mine.parameters(), anyone.parameters(), strict=True
    ):
        assert torch.equal(q, p), name
        assert not torch.equal(r, p), name


def drifted_follower():
    """A follower at window 1 whose model drifted; the leader published window 2's fingerprint
    and a checkpoint of window 3. Returns (sync, its bucket, its model, the leader's model)."""
    net, blobs, expected = build_network()
    leader = dev_keypair("//Alice//leader")
    through_2 = replay(blobs, {a: p for a, p in expected.items() if a <= 2})
    doc = Fingerprint(2, tuple(model_fingerprint(through_2)), hparams_hash(HP))
    net.buckets[leader.ss58_address].put(
        keys.fingerprint_key(2), encode_fingerprint(doc, leader), 35
    )
    reference = replay(blobs, expected)
    publish_checkpoint(net, leader, reference, 3)
    model = replay(blobs, {a: p for a, p in expected.items() if a <= 1})
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # drifted
    chain, own = FakeChain(), Bucket()
    chain.now = CLOCK.end(3) + 1  # window 2 from its aggregate, then the fingerprint check
    sync = ValidatorSync(
        HP, chain, dev_keypair("//Alice//follower"), net, bucket=own, model=model,
        state=ValidatorState(applied_through=1), follow_wait=0.0, held=lambda *_: None,
        on_change=lambda: None,
    )  # fmt: skip
    return sync, own, model, reference


def assert_same_model(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    for (name, p), q in zip(reference.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(q, p), name


def test_a_follower_that_resyncs_past_the_window_it_works_on_finishes_it():
    """A drifted follower's re-sync at window 3's start (its window-2 fingerprint differs)
    loads the leader's newest checkpoint, of window 3 itself: settling window 3 must then
    apply nothing (the model holds it), still publish the follower's heartbeat, and end on
    the leader's model. It raised "window 3 out of order" before."""
    sync, own, model, reference = drifted_follower()
    leader = dev_keypair("//Alice//leader").ss58_address

    async def window_3() -> None:
        await sync.advance_to(2)
        assert sync.applier.fingerprint_ok is False and sync.applier.in_sync
        assert sync.state.applied_through == 3  # the checkpoint is newer than window 2
        await sync.settle(3, PeerList(3, (), (), "scores", hparams_hash(HP)), leader)

    asyncio.run(window_3())
    assert sync.state.applied_through == 3 and keys.peers_key(3) in own.objects
    assert_same_model(model, reference)


def test_a_catch_up_that_resyncs_past_its_target_applies_no_window_twice():
    """The same re-sync in the middle of a catch-up over windows 2-3 (a validator behind):
    window 3 is in the checkpoint, so the catch-up stops there."""
    sync, _, model, reference = drifted_follower()
    asyncio.run(sync.advance_to(3))
    assert sync.state.applied_through == 3 and sync.applier.in_sync
    assert_same_model(model, reference)


def test_a_leader_that_resynced_past_the_window_it_leads_publishes_nothing_for_it():
    """The drifted validator is the leader of window 3 (leadership moved to it) and its re-sync
    loaded window 3's checkpoint: the window was led and published by the checkpoint's author,
    so this leader publishes no peer list, aggregate or fingerprint of its own for it (a list
    it did not apply would tell followers a different story) and keeps the model it loaded."""
    sync, own, model, reference = drifted_follower()
    me = dev_keypair("//Alice//follower").ss58_address

    async def window_3() -> None:
        await sync.advance_to(2)
        await sync.settle(3, PeerList(3, (), (), "scores", hparams_hash(HP)), me)

    asyncio.run(window_3())
    assert sync.state.applied_through == 3 and sync.applier.in_sync
    for key in (keys.peers_key(3), keys.aggregate_key(3), keys.fingerprint_key(3)):
        assert key not in own.objects, key
    assert_same_model(model, reference)
