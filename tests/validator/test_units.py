"""The validator's pure parts: checks, scoring, weights, sampling, state."""

from __future__ import annotations

import json
import math

import pytest
import torch

from template.chain.types import Metagraph, Neuron, SubnetParams
from template.hparams import hparams_hash
from template.signing import dev_keypair
from template.training.compression import Compressor
from template.training.inner import sequence_loss
from template.training.model import build_model
from template.training.wire import decode_upload, encode_upload
from template.validator.measure import sequence_losses
from template.validator.sampling import choose_for_evaluation, evaluation_budget
from template.validator.score import Scoreboard
from template.validator.state import ValidatorState, load_state, save_state
from template.validator.weights import cap_weights, compute_weights, weights_due

from .harness import small_hparams

HP = small_hparams()
SHAPES = {"a": (64, 32), "b": (300,)}


def make_upload(seed: int, uid: int = 1, window: int = 5, pages=(1, 2), scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    deltas = {n: torch.randn(s, generator=g) * scale for n, s in SHAPES.items()}
    delta = Compressor(HP.compression).compress(deltas)
    key = dev_keypair(f"//Alice//u{uid}")
    blob = encode_upload(
        delta,
        window=window,
        uid=uid,
        hparams_hash=hparams_hash(HP),
        config=HP.compression,
        key=key,
        pages=pages,
    )
    return decode_upload(
        blob, max_bytes=1 << 24, expected={}, param_shapes=SHAPES, config=HP.compression
    )


def test_scores_ema_nan_and_hotkey_reset():
    board = Scoreboard(alpha=0.5)
    for uid, v in {1: 1.0, 2: 0.5, 3: -1.0, 4: -0.25}.items():
        board.update(uid, f"hk{uid}", v)
    assert board.scores[1] == 0.5  # the EMA starts at 0
    board.update(1, "hk1", float("nan"))  # counts as -1
    assert board.scores[1] == -0.25 and all(math.isfinite(s) for s in board.scores.values())
    neurons = tuple(
        Neuron(u, f"hk{u}" if u != 2 else "new", "c", 0, False, 0, 0, 0, 0, 0, 0) for u in (1, 2, 3)
    )
    assert board.sync_hotkeys(Metagraph(1, 0, neurons)) == [2, 4]
    assert 2 not in board.scores and 4 not in board.scores


def test_weights_normalised_capped_padded():
    capped = cap_weights({1: 10.0, 2: 1.0, 3: 1.0, 4: 1.0}, 0.4)
    assert abs(sum(capped.values()) - 1) < 1e-9 and max(capped.values()) <= 0.4 + 1e-9
    params = SubnetParams(1, 10, 2, min_allowed_weights=4, max_weight_limit=1.0)
    w = compute_weights(
        {1: 0.5, 2: -1.0, 3: float("nan"), 5: 0.5}, [0, 1, 2, 3, 4, 5], params, exclude={0}
    )
    assert len(w) == 4 and w[1] == w[5] and abs(w[1] - 0.5) < 1e-3
    assert all(0 < w[u] < 1e-3 for u in w if u not in (1, 5))  # fillers: never zero
    assert 0 in w  # a filler goes to the excluded validator before any non-earning miner
    assert compute_weights({1: -1.0}, [1], params, exclude=set()) == {}
    assert weights_due(10, None, 3, params, 1) and not weights_due(11, 10, 3, params, 1)
    assert not weights_due(20, 10, 3, params, 2)


def test_fair_rotation_reaches_everyone():
    uids = list(range(10))
    last: dict[int, int] = {}
    seen: list[set[int]] = []
    for w in range(4):
        chosen = choose_for_evaluation(uids, last, 3, w)
        assert len(chosen) == 3
        for u in chosen:
            last[u] = w
        seen.append(set(chosen))
    assert set().union(*seen) == set(uids)  # everyone within ceil(10 / 3) = 4 windows
    assert evaluation_budget(0, 0.0, 1.0) is None
    assert evaluation_budget(5, 2.0, 1.0) == 2 and evaluation_budget(5, 0.0, None) == 5


def test_state_roundtrip_and_refuses_tampering(tmp_path):
    model = build_model(HP.model)
    st = ValidatorState(
        window=7,
        applied_through=6,
        scores={1: 0.5},
        hotkeys={1: "hk"},
        digests={"d": (6, 1)},
        evidence_s={1: 0.3},
        evidence_v={1: 1.0},
        peers={6: [1, 3]},
        full_work=(5, 0.25),
        hparams_hash="h",
    )
    save_state(tmp_path, st, model)
    fresh = build_model(HP.model.__class__(**{**HP.model.__dict__, "init_seed": 1}))
    got = load_state(tmp_path, fresh, "h")
    assert got is not None and got.scores == {1: 0.5} and got.digests == {"d": (6, 1)}
    assert got.peers == {6: [1, 3]} and got.full_work == (5, 0.25)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )
    assert load_state(tmp_path, fresh, "other-run") is None
    path = tmp_path / "validator_state.json"
    good = path.read_text()
    doc = json.loads(good)
    doc["state"]["peers"] = [1, 3]  # a hand-edited or foreign file: refused, not a crash
    path.write_text(json.dumps(doc))
    assert load_state(tmp_path, fresh, "h") is None
    doc = json.loads(good)
    for bad in ([5, "nan"], [5], 5):  # refused with the warning, never a crash at start-up
        doc["state"]["full_work"] = bad
        path.write_text(json.dumps(doc))
        assert load_state(tmp_path, fresh, "h") is None
    del doc["state"]["full_work"]  # a state saved before the rate was kept
    path.write_text(json.dumps(doc))
    assert load_state(tmp_path, fresh, "h").full_work is None
    path.write_text(good)
    assert load_state(tmp_path, fresh, "h") is not None
    # a kill between the two renames of save_state: the next model beside this JSON; then a
    # missing model file. The scores, evidence and replay memory stay; the model position
    # goes (start-up catches up from a checkpoint) and the model is left as it was.
    other = build_model(HP.model.__class__(**{**HP.model.__dict__, "init_seed": 2}))
    before = [p.detach().clone() for p in other.parameters()]
    for damage in ("next model", "no model"):
        if damage == "next model":
            nxt = build_model(HP.model.__class__(**{**HP.model.__dict__, "init_seed": 3}))
            save_state(tmp_path / "next", st, nxt)
            (tmp_path / "next" / "model.safetensors").replace(tmp_path / "model.safetensors")
        else:
            (tmp_path / "model.safetensors").unlink()
        got = load_state(tmp_path, other, "h")
        assert got is not None and got.applied_through is None, damage
        assert got.scores == {1: 0.5} and got.digests == {"d": (6, 1)} and got.window == st.window
        assert all(torch.equal(a, b) for a, b in zip(before, other.parameters(), strict=True))


@pytest.mark.parametrize("flag", ["--score.alpha", "--eval.lr-scale"])
def test_flags_validate(flag):
    from template.validator.args import config_from_args
    from template.validator.startup import build_parser

    args = build_parser().parse_args([flag, "0"])
    with pytest.raises(ValueError, match=flag):
        config_from_args(args)


async def test_set_weights_failures_are_retried_and_never_raise():
    from template.chain.errors import ChainError
    from template.chain.types import WeightsResult
    from template.validator.weights import set_weights_with_retry

    class FlakyChain:
        calls = 0

        async def set_weights(self, uids, weights, version_key):
            FlakyChain.calls += 1
            if FlakyChain.calls == 1:
                raise ChainError("connection reset")
            return WeightsResult(True, 42, "")

    res = await set_weights_with_retry(FlakyChain(), {1: 0.5, 2: 0.5}, backoff=0.0)
    assert res.success and res.block == 42 and FlakyChain.calls == 2

    class Broken:
        async def set_weights(self, uids, weights, version_key):
            raise RuntimeError("boom")

    res = await set_weights_with_retry(Broken(), {1: 1.0}, attempts=2, backoff=0.0)
    assert not res.success and "boom" in res.message


def test_sequence_losses_are_each_sequences_training_loss():
    """The validator's per-sequence losses are, one by one, the loss a miner trains on (and a
    batch split does not change them)."""
    torch.manual_seed(0)
    model = build_model(HP.model)
    seqs = torch.randint(0, HP.model.vocab_size, (5, HP.model.seq_len + 1))
    with torch.no_grad():
        each = [sequence_loss(model, seqs[i : i + 1]).item() for i in range(5)]
    for batch in (5, 2):
        got = sequence_losses(model, seqs, batch_size=batch)
        assert got.dtype == torch.float64 and got.shape == (5,)
        assert got.tolist() == pytest.approx(each, rel=1e-6)
    assert len(set(each)) == 5  # distinct sequences, distinct losses: the order is checked


def test_a_failed_window_gives_back_the_remembered_full_work_rate():
    """A window whose settle fails is retried (``Validator._undone_on_failure``): the rate it
    noted goes back with its scores, so the retry sees the window before it."""
    from types import SimpleNamespace

    from template.validator.judge import Decision, Evidence
    from template.validator.loop import Validator
    from template.validator.score import FullWorkMemory, Scoreboard

    v = SimpleNamespace(
        evidence=Evidence(),
        scores=Scoreboard(0.3),
        state=ValidatorState(),
        full_work=FullWorkMemory(8, window=5, rate=0.2),
    )
    with pytest.raises(RuntimeError), Validator._undone_on_failure(v):
        v.full_work.note(6, {1: Decision(1, "credited", gain=0.02, pay=0.9)}, {1: 0.9})
        v.scores.update(1, "hk", 0.9)
        assert (v.full_work.window, v.full_work.rate) == (6, 0.9)
        raise RuntimeError("settle failed")
    assert (v.full_work.window, v.full_work.rate) == (5, 0.2) and v.scores.scores == {}
