import pytest
import torch

from template import SPEC_VERSION
from template.hparams import hparams_hash, load_hparams
from template.protocol.aggregation import apply_uploads, decode_peer_uploads
from template.protocol.documents import (
    Aggregate,
    Checkpoint,
    Fingerprint,
    PeerList,
    Verdict,
    Verdicts,
    decode_aggregate,
    decode_checkpoint,
    decode_fingerprint,
    decode_latest,
    decode_peer_list,
    decode_verdicts,
    encode_aggregate,
    encode_checkpoint,
    encode_fingerprint,
    encode_latest,
    encode_peer_list,
    encode_verdicts,
)
from template.protocol.fingerprint import fingerprints_match, model_fingerprint
from template.signing import dev_keypair
from template.training.compression import Compressor
from template.training.envelope import WireError, pack_signed
from template.training.model import build_model, param_shapes
from template.training.wire import encode_upload

HP = load_hparams("tiny")
RUN = hparams_hash(HP)
LEADER = dev_keypair("//Alice")
MINERS = [dev_keypair(f"//Miner{i}") for i in range(3)]


def test_peer_list_round_trip_and_checks():
    doc = PeerList(7, ((1, MINERS[0].ss58_address),), ((2, MINERS[1].ss58_address),), "scores", RUN)
    blob = encode_peer_list(doc, LEADER)
    got = decode_peer_list(blob, signer=LEADER.ss58_address, hparams_hash=RUN, window=7)
    assert (
        got.peers == doc.peers
        and got.reserves == doc.reserves
        and got.signer == LEADER.ss58_address
    )
    with pytest.raises(WireError) as e:
        decode_peer_list(blob, signer=MINERS[0].ss58_address)
    assert e.value.reason == "field_mismatch"
    with pytest.raises(WireError):
        decode_peer_list(blob, window=8)
    with pytest.raises(WireError):
        decode_peer_list(blob, hparams_hash="0" * 64)
    bad = PeerList(7, ((1, "x"),), (), "scores", RUN)
    with pytest.raises(WireError) as e:
        decode_peer_list(encode_peer_list(bad, LEADER))
    assert e.value.reason == "bad_value"
    dup = PeerList(7, ((1, MINERS[0].ss58_address), (1, MINERS[1].ss58_address)), (), "scores", RUN)
    with pytest.raises(WireError):
        decode_peer_list(encode_peer_list(dup, LEADER))
    tampered = bytearray(blob)
    at = tampered.find(b'\\"window\\":7')  # the header is a JSON string inside safetensors' JSON
    assert at > 0
    tampered[at + 11] = ord("8")
    with pytest.raises(WireError) as e:
        decode_peer_list(bytes(tampered))
    assert e.value.reason == "bad_signature"


def test_verdicts_round_trip_and_a_hostile_validators_entries_are_refused():
    m0, m1 = MINERS[0].ss58_address, MINERS[1].ss58_address
    doc = Verdicts(
        7,
        (
            Verdict(1, m0, "credited", "", 0.031, 1.9, 6.5, 1.0, 0.84),
            Verdict(2, m1, "rejected", "harmful: harm z -4.72", -0.03, 0.7, 3.1, 0.0, 0.0),
        ),
        RUN,
    )
    blob = encode_verdicts(doc, LEADER)
    got = decode_verdicts(blob, signer=LEADER.ss58_address, hparams_hash=RUN, window=7)
    assert got.verdicts == doc.verdicts and got.signer == LEADER.ss58_address
    assert got.of(2).reason == "harmful: harm z -4.72" and got.of(3) is None
    assert str(got.of(1)).startswith("credited, gain +0.031, fit z +1.90, evidence Z +6.50")
    with pytest.raises(WireError):
        decode_verdicts(blob, signer=MINERS[0].ss58_address)  # another validator's name
    with pytest.raises(WireError):
        decode_verdicts(blob, window=8)
    # a figure the judge could not compute goes out as 0 (JSON has no NaN)
    nan = Verdicts(7, (Verdict(1, m0, "unproven", "", float("nan")),), RUN)
    assert decode_verdicts(encode_verdicts(nan, LEADER)).of(1).gain == 0.0

    def header(entries):
        return {"window": 7, "hparams_hash": RUN, "spec_version": SPEC_VERSION, "verdicts": entries}

    ok = [1, m0, "credited", "", 0.1, 1.0, 3.0, 1.0, 0.5]
    hostile = {
        "an unknown verdict": [[1, m0, "paid in full", "", 0.1, 1.0, 3.0, 1.0, 0.5]],
        "a repeated uid": [ok, ok],
        "a reason past the cap": [[1, m0, "rejected", "x" * 301, 0, 0, 0, 0, 0]],
        "a figure that is no number": [[1, m0, "credited", "", "0.1", 1.0, 3.0, 1.0, 0.5]],
        "a figure that is a truth value": [[1, m0, "credited", "", True, 1.0, 3.0, 1.0, 0.5]],
        "a missing field": [[1, m0, "credited", "", 0.1, 1.0, 3.0, 1.0]],
        "a hotkey that is no address": [[1, "x", "credited", "", 0.1, 1.0, 3.0, 1.0, 0.5]],
        "too many entries": [[u, m0, "missing", "", 0, 0, 0, 0, 0] for u in range(257)],
    }
    assert decode_verdicts(pack_signed({}, header([ok]), LEADER, kind="verdicts")).of(1)
    for what, entries in hostile.items():
        forged = pack_signed({}, header(entries), LEADER, kind="verdicts")
        with pytest.raises(WireError) as e:
            decode_verdicts(forged, signer=LEADER.ss58_address)
        assert e.value.reason == "bad_value", what


def _uploads(model, window):
    shapes = param_shapes(model)
    blobs = []
    g = torch.Generator().manual_seed(window)
    for uid, key in enumerate(MINERS):
        delta = {n: torch.randn(s, generator=g) * 1e-3 for n, s in shapes.items()}
        cd = Compressor(HP.compression).compress(delta)
        blobs.append(
            encode_upload(
                cd, window=window, uid=uid, hparams_hash=RUN, config=HP.compression, key=key
            )
        )
    peers = [(uid, k.ss58_address) for uid, k in enumerate(MINERS)]
    return peers, blobs


def test_aggregate_replay_equals_live_step():
    live, replay = build_model(HP.model), build_model(HP.model)
    peers, blobs = _uploads(live, window=3)
    shapes = param_shapes(live)
    ups = decode_peer_uploads(blobs, peers, 3, HP, shapes)
    assert apply_uploads(live, ups, HP) == 3

    bundle = encode_aggregate(Aggregate(3, tuple(peers), tuple(blobs), RUN), LEADER)
    agg = decode_aggregate(bundle, max_bytes=10 << 20, signer=LEADER.ss58_address, window=3)
    assert agg.uploads == tuple(blobs)
    from template.protocol.catchup import apply_aggregate

    apply_aggregate(replay, agg, HP)
    for a, b in zip(live.parameters(), replay.parameters(), strict=True):
        assert torch.equal(a, b)
    assert model_fingerprint(live) == model_fingerprint(replay)


def test_invalid_peer_upload_is_skipped_by_everyone():
    model = build_model(HP.model)
    peers, blobs = _uploads(model, window=4)
    blobs[1] = blobs[1][:-10]  # truncated
    ups = decode_peer_uploads(blobs, peers, 4, HP, param_shapes(model))
    assert [u.uid for u in ups] == [0, 2]
    ups = decode_peer_uploads([blobs[0], None, blobs[2]], peers, 5, HP, param_shapes(model))
    assert ups == []  # wrong window for all


def test_fingerprint_detects_one_missed_aggregate_and_tolerates_rounding():
    a, b = build_model(HP.model), build_model(HP.model)
    fa = model_fingerprint(a)
    assert fingerprints_match(fa, model_fingerprint(b))
    peers, blobs = _uploads(a, window=1)
    apply_uploads(a, decode_peer_uploads(blobs, peers, 1, HP, param_shapes(a)), HP)
    assert not fingerprints_match(model_fingerprint(a), fa)
    with torch.no_grad():
        for p in b.parameters():
            p.mul_(1 + 1e-7)
    assert fingerprints_match(model_fingerprint(b), fa)
    fp = Fingerprint(1, tuple(fa), RUN)
    got = decode_fingerprint(encode_fingerprint(fp, LEADER), signer=LEADER.ss58_address, window=1)
    assert got.values == tuple(fa)


def test_checkpoint_round_trip_and_wrong_shapes():
    model = build_model(HP.model)
    shapes = param_shapes(model)
    ck = Checkpoint(9, tuple(model_fingerprint(model)), dict(model.named_parameters()), RUN)
    blob = encode_checkpoint(ck, LEADER)
    got = decode_checkpoint(
        blob, max_bytes=len(blob), param_shapes=shapes, signer=LEADER.ss58_address
    )
    assert got.window == 9 and all(
        torch.equal(got.params[n], p) for n, p in model.named_parameters()
    )
    with pytest.raises(WireError) as e:
        decode_checkpoint(blob, max_bytes=len(blob) - 1, param_shapes=shapes)
    assert e.value.reason == "oversized"
    wrong = dict(shapes)
    wrong.pop(next(iter(wrong)))
    with pytest.raises(WireError):
        decode_checkpoint(blob, max_bytes=len(blob), param_shapes=wrong)
    assert decode_latest(encode_latest(9, "v1/checkpoints/x", LEADER)) == (9, "v1/checkpoints/x")


def test_a_document_of_another_spec_version_is_refused_with_a_clear_error(monkeypatch):
    """A node of spec version 1 (documents then named .json) and this release must refuse each
    other's documents, naming both versions, instead of parsing them."""
    import template.protocol.documents as documents

    model = build_model(HP.model)
    shapes = param_shapes(model)
    ck = Checkpoint(9, tuple(model_fingerprint(model)), dict(model.named_parameters()), RUN)
    peers = PeerList(7, ((1, MINERS[0].ss58_address),), (), "scores", RUN)
    agg = Aggregate(7, ((1, MINERS[0].ss58_address),), (b"x",), RUN)
    other = documents.SPEC_VERSION - 1
    monkeypatch.setattr(documents, "SPEC_VERSION", other)  # what an older node writes
    blobs = {
        "peer-list": (encode_peer_list(peers, LEADER), decode_peer_list, {}),
        "aggregate": (encode_aggregate(agg, LEADER), decode_aggregate, {"max_bytes": 1 << 20}),
        "fingerprint": (
            encode_fingerprint(Fingerprint(7, (1.0,), RUN), LEADER),
            decode_fingerprint,
            {},
        ),
        "checkpoint": (
            encode_checkpoint(ck, LEADER),
            decode_checkpoint,
            {"max_bytes": 1 << 30, "param_shapes": shapes},
        ),
        "checkpoint-latest": (encode_latest(9, "x", LEADER), decode_latest, {}),
    }
    monkeypatch.undo()
    for kind, (blob, decode, kw) in blobs.items():
        with pytest.raises(WireError) as e:
            decode(blob, **kw)
        assert e.value.reason == "field_mismatch"
        want = f"{kind} document is spec_version {other}, this node runs spec_version {other + 1}"
        assert want in str(e.value)
