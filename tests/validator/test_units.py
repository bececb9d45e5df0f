"""The validator's pure parts: checks, scoring, weights, sampling, state, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from template.chain.types import Metagraph, Neuron, SubnetParams
from template.hparams import hparams_hash
from template.signing import dev_keypair
from template.training.compression import Compressor
from template.training.model import build_model
from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.training.wire import decode_upload, encode_upload
from template.validator.checks import (
    ReplayMemory,
    Submitted,
    content_digest,
    find_copies,
    free_riders,
    index_digest,
    page_claim_error,
    page_proof_error,
    sync_error,
    update_page_proof,
)
from template.validator.evaluate import Evaluator
from template.validator.sampling import choose_for_evaluation, evaluation_budget
from template.validator.scoring import Scoreboard, window_values
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


def test_copies_byte_identical_and_near_identical_later_one_penalised():
    a, b, c = make_upload(1, uid=1), make_upload(1, uid=2), make_upload(2, uid=3)
    items = [
        Submitted(1, 10.0, content_digest(a), a),
        Submitted(2, 12.0, content_digest(b), b),
        Submitted(3, 11.0, content_digest(c), c),
    ]
    out = find_copies(items, overlap=0.9, similarity=0.9)
    assert set(out) == {2} and "byte-identical" in out[2]
    # same indices, values re-quantised with noise: caught by overlap + similarity
    noisy = make_upload(1, uid=4)
    t0 = next(iter(noisy.delta.tensors.values()))
    assert content_digest(noisy) == content_digest(a)  # same content
    out = find_copies(
        [Submitted(1, 11.0, "x", a), Submitted(4, 10.0, "y", noisy)], overlap=0.9, similarity=0.9
    )
    assert set(out) == {1} and "overlap" in out[1]
    assert t0.indices.numel() > 0
    # same LastModified: order unknown, both penalised
    out = find_copies(
        [Submitted(1, 10.0, "d", a), Submitted(2, 10.0, "d", b)], overlap=0.9, similarity=0.9
    )
    assert set(out) == {1, 2}
    # independent uploads are not copies
    assert (
        find_copies(
            [Submitted(1, 1.0, "p", a), Submitted(3, 2.0, "q", c)], overlap=0.9, similarity=0.9
        )
        == {}
    )


def test_free_riders_zero_tiny_nonfinite():
    out = free_riders({1: 1.0, 2: 1.1, 3: 0.0, 4: 0.01, 5: float("nan"), 6: 0.9}, 0.05)
    assert set(out) == {3, 4, 5}


def test_replay_memory_remembers_recent_windows_only():
    a = make_upload(1)
    mem = ReplayMemory(windows=3)
    digests = [content_digest(a), index_digest(a)]
    assert mem.check(5, digests) is None
    mem.remember(5, 1, digests)
    assert mem.check(5, digests) is None  # same window: the copy check's business
    assert "replay of uid 1" in mem.check(6, [index_digest(a)])
    mem.remember(9, 2, ["other"])
    assert mem.check(10, digests) is None  # forgotten after 3 windows


def test_page_claims(tiny_dataset):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    own = ds.layout.pages(5, 1, 3)
    assert page_claim_error(make_upload(1, pages=tuple(own)), ds.layout, 5, 1) is None
    other = ds.layout.pages(5, 2, 3)
    assert "outside its assignment" in page_claim_error(
        make_upload(1, pages=tuple(other)), ds.layout, 5, 1
    )
    assert "no pages" in page_claim_error(make_upload(1, pages=()), ds.layout, 5, 1)


def test_page_proof_and_sync_verdicts():
    p = update_page_proof(None, 1.0)
    assert page_proof_error(p, 0.1) is None
    p = update_page_proof(p, -0.5)
    assert page_proof_error(p, 0.1) is None  # one noisy window does not condemn
    p = update_page_proof(p, -0.5)
    assert page_proof_error(p, 0.1) is not None
    assert update_page_proof(None, float("nan")) == -5.0
    assert sync_error(0.01) is None and sync_error(0.0) is None
    assert sync_error(-0.2) and sync_error(float("nan"))
    assert sync_error(-0.001, heldout_before=3.0, tolerance=0.002) is None  # noise
    assert sync_error(-0.01, heldout_before=3.0, tolerance=0.002)  # harmful


def test_scores_ema_penalties_nan_and_hotkey_reset():
    board = Scoreboard(alpha=0.5)
    vals = window_values(
        {1: 0.2, 2: 0.1}, {3: "copy"}, [4], invalid_penalty=1.0, missing_penalty=0.25
    )
    assert vals == {1: 1.0, 2: 0.5, 3: -1.0, 4: -0.25}
    unhelpful = window_values(
        {1: 0.2, 5: -0.001}, {}, [], invalid_penalty=1.0, missing_penalty=0.25
    )
    assert unhelpful[5] == 0.0  # valid but no gain: earns nothing, is not punished
    for uid, v in vals.items():
        board.update(uid, f"hk{uid}", v)
    board.update(1, "hk1", float("nan"))
    assert board.scores[1] == 0.0 and all(math.isfinite(s) for s in board.scores.values())
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
    assert 0 not in w
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
        page_proof={1: 0.3},
        hparams_hash="h",
    )
    save_state(tmp_path, st, model)
    fresh = build_model(HP.model.__class__(**{**HP.model.__dict__, "init_seed": 1}))
    got = load_state(tmp_path, fresh, "h")
    assert got is not None and got.scores == {1: 0.5} and got.digests == {"d": (6, 1)}
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )
    assert load_state(tmp_path, fresh, "other-run") is None
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    assert load_state(tmp_path, fresh, "h") is None


def test_evaluation_leaves_the_model_unchanged(tiny_dataset):
    ds = PageDataset(TokenStream(tiny_dataset), HP)
    model = build_model(HP.model)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(0)
    delta = Compressor(HP.compression).compress(
        {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    )
    blob = encode_upload(
        delta,
        window=3,
        uid=1,
        hparams_hash=hparams_hash(HP),
        config=HP.compression,
        key=dev_keypair("//Alice//u1"),
        pages=ds.layout.pages(3, 1, 2),
    )
    up = decode_upload(
        blob, max_bytes=1 << 26, expected={}, param_shapes=shapes, config=HP.compression
    )
    ev = Evaluator(model, ds, HP, assigned_pages=2, heldout_pages=2, lr_scale=1.0, salt="v")
    res = ev.evaluate(up, 3)
    assert res.heldout_gain < 0  # a random delta hurts
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


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
