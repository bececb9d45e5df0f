"""Documents the validators publish, in the same signed envelope (and strict decoder) as uploads.

- ``PeerList``: which uploads of a window are aggregated (every validator publishes its own;
  the leader's is the one nodes apply).
- ``Aggregate``: the selected uploads' own signed bytes, bundled. Replaying it is the same
  computation as the live outer step, and each inner upload still verifies against its miner.
- ``Fingerprint``: the model fingerprint after a window's aggregate was applied.
- ``Verdicts``: one validator's verdict on each miner's upload of a window, with its figures
  (every validator publishes its own, so a miner can see why it was or was not paid).
- ``Checkpoint``: every parameter (float32) after a window, plus the fingerprint.
- ``LatestCheckpoint``: a pointer to the newest checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from template import SPEC_VERSION
from template.signing import SigningKey
from template.training.envelope import Schema, TensorRule, WireError, pack_signed, unpack_signed

PEER_LIST = Schema(
    kind="peer-list",
    fields={
        "window": int,
        "peers": list,
        "reserves": list,
        "basis": str,
        "hparams_hash": str,
        "spec_version": int,
    },
)
AGGREGATE = Schema(
    kind="aggregate",
    fields={"window": int, "peers": list, "hparams_hash": str, "spec_version": int},
    extra_tensors=TensorRule("U8", ndim=1),
)
FINGERPRINT = Schema(
    kind="fingerprint",
    fields={"window": int, "values": list, "hparams_hash": str, "spec_version": int},
)
VERDICTS = Schema(
    kind="verdicts",
    fields={"window": int, "verdicts": list, "hparams_hash": str, "spec_version": int},
)
CHECKPOINT = Schema(
    kind="checkpoint",
    fields={"window": int, "fingerprint": list, "hparams_hash": str, "spec_version": int},
    extra_tensors=TensorRule("F32"),
)
LATEST = Schema(kind="checkpoint-latest", fields={"window": int, "key": str, "spec_version": int})

MAX_JSON_DOC_BYTES = 1 << 20
MAX_PEERS = 256


@dataclass(frozen=True)
class PeerList:
    window: int
    peers: tuple[tuple[int, str], ...]
    reserves: tuple[tuple[int, str], ...]
    basis: str  # "scores" or "bootstrap"
    hparams_hash: str
    signer: str = ""


@dataclass(frozen=True)
class Aggregate:
    window: int
    peers: tuple[tuple[int, str], ...]
    uploads: tuple[bytes, ...]  # the peers' signed upload blobs, in peer order
    hparams_hash: str
    signer: str = ""


@dataclass(frozen=True)
class Fingerprint:
    window: int
    values: tuple[float, ...]
    hparams_hash: str
    signer: str = ""


VERDICT_KINDS = ("credited", "unproven", "unattributed", "rejected", "not_evaluated", "missing")
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    """A validator's verdict on one uid's upload of a window (``VERDICT_KINDS``; docs/scoring.md
    section 5), why (a rejection's ``code: detail``), and the figures behind it: the control
    gain, this window's own-page fit z, the accumulated evidence Z, the part of its gain it was
    paid and the value the window added to its score (section 6)."""

    uid: int
    hotkey: str
    verdict: str
    reason: str = ""
    gain: float = 0.0
    fit_z: float = 0.0
    evidence_z: float = 0.0
    pay: float = 0.0
    value: float = 0.0

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.verdict}{why}, gain {self.gain:+.4g}, fit z {self.fit_z:+.2f}, evidence Z "
            f"{self.evidence_z:+.2f}, pay {self.pay:.2f}, value {self.value:+.3f}"
        )


@dataclass(frozen=True)
class Verdicts:
    window: int
    verdicts: tuple[Verdict, ...]
    hparams_hash: str
    signer: str = ""

    def of(self, uid: int) -> Verdict | None:
        return next((v for v in self.verdicts if v.uid == uid), None)


@dataclass(frozen=True)
class Checkpoint:
    window: int
    fingerprint: tuple[float, ...]
    params: dict[str, torch.Tensor]
    hparams_hash: str
    signer: str = ""


def _peer_pairs(value: object, what: str) -> tuple[tuple[int, str], ...]:
    if not isinstance(value, list) or len(value) > MAX_PEERS:
        raise WireError("bad_value", f"{what} must be a list of at most {MAX_PEERS} [uid, hotkey]")
    out = []
    for item in value:
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and type(item[0]) is int
            and 0 <= item[0] < 1 << 16
            and isinstance(item[1], str)
            and 40 <= len(item[1]) <= 50
        )
        if not ok:
            raise WireError("bad_value", f"{what} entries must be [uid, hotkey], got {item!r}")
        out.append((item[0], item[1]))
    if len({u for u, _ in out}) != len(out):
        raise WireError("bad_value", f"{what} repeats a uid")
    return tuple(out)


def _floats(value: object, what: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise WireError("bad_value", f"{what} must be a list of finite numbers")
    return tuple(float(v) for v in value)


def _base(window: int, hparams_hash: str) -> dict:
    return {"window": int(window), "hparams_hash": hparams_hash, "spec_version": SPEC_VERSION}


def check_spec_version(header: Mapping, kind: str) -> None:
    """A document made by a node of another spec version is refused, never parsed further."""
    if header["spec_version"] != SPEC_VERSION:
        raise WireError(
            "field_mismatch",
            f"{kind} document is spec_version {header['spec_version']}, this node runs "
            f"spec_version {SPEC_VERSION}: the two releases are incompatible; run the release "
            "the subnet's validators run",
        )


def _open(
    blob: bytes,
    schema: Schema,
    *,
    max_bytes: int = MAX_JSON_DOC_BYTES,
    signer: str | None,
    hparams_hash: str | None = None,
    window: int | None = None,
) -> tuple[dict, dict[str, torch.Tensor], str]:
    """Strictly decode a document of ``schema`` and check what every document carries: its
    spec version, and when given, its run (hparams_hash) and window."""
    header, tensors, who = unpack_signed(
        blob, max_bytes=max_bytes, schema=schema, expected_signer=signer
    )
    check_spec_version(header, schema.kind)
    if hparams_hash is not None and header["hparams_hash"] != hparams_hash:
        raise WireError("field_mismatch", "document is for another run (hparams_hash)")
    if window is not None and header["window"] != window:
        raise WireError(
            "field_mismatch", f"document is for window {header['window']}, not {window}"
        )
    return header, tensors, who


# --- peer list ---------------------------------------------------------------------------
def encode_peer_list(doc: PeerList, key: SigningKey) -> bytes:
    header = _base(doc.window, doc.hparams_hash) | {
        "peers": [list(p) for p in doc.peers],
        "reserves": [list(p) for p in doc.reserves],
        "basis": doc.basis,
    }
    return pack_signed({}, header, key, kind=PEER_LIST.kind)


def decode_peer_list(
    blob: bytes,
    *,
    signer: str | None = None,
    hparams_hash: str | None = None,
    window: int | None = None,
) -> PeerList:
    header, _, who = _open(blob, PEER_LIST, signer=signer, hparams_hash=hparams_hash, window=window)
    if header["basis"] not in ("scores", "bootstrap"):
        raise WireError(
            "bad_value", f"basis must be 'scores' or 'bootstrap', got {header['basis']!r}"
        )
    return PeerList(
        header["window"],
        _peer_pairs(header["peers"], "peers"),
        _peer_pairs(header["reserves"], "reserves"),
        header["basis"],
        header["hparams_hash"],
        who,
    )


# --- aggregate ---------------------------------------------------------------------------
def encode_aggregate(doc: Aggregate, key: SigningKey) -> bytes:
    if len(doc.uploads) != len(doc.peers):
        raise ValueError("one upload per peer")
    tensors = {
        f"upload.{i:04d}": torch.frombuffer(bytearray(b), dtype=torch.uint8)
        if b
        else torch.zeros(0, dtype=torch.uint8)
        for i, b in enumerate(doc.uploads)
    }
    header = _base(doc.window, doc.hparams_hash) | {"peers": [list(p) for p in doc.peers]}
    return pack_signed(tensors, header, key, kind=AGGREGATE.kind)


def decode_aggregate(
    blob: bytes,
    *,
    max_bytes: int,
    signer: str | None = None,
    hparams_hash: str | None = None,
    window: int | None = None,
) -> Aggregate:
    header, tensors, who = _open(
        blob,
        AGGREGATE,
        max_bytes=max_bytes,
        signer=signer,
        hparams_hash=hparams_hash,
        window=window,
    )
    peers = _peer_pairs(header["peers"], "peers")
    expected = [f"upload.{i:04d}" for i in range(len(peers))]
    if sorted(tensors) != expected:
        raise WireError("unknown_key", f"aggregate tensors must be {expected[:3]}..., one per peer")
    uploads = tuple(tensors[name].numpy().tobytes() for name in expected)
    return Aggregate(header["window"], peers, uploads, header["hparams_hash"], who)


# --- fingerprint -------------------------------------------------------------------------
def encode_fingerprint(doc: Fingerprint, key: SigningKey) -> bytes:
    header = _base(doc.window, doc.hparams_hash) | {"values": list(doc.values)}
    return pack_signed({}, header, key, kind=FINGERPRINT.kind)


def decode_fingerprint(
    blob: bytes,
    *,
    signer: str | None = None,
    hparams_hash: str | None = None,
    window: int | None = None,
) -> Fingerprint:
    header, _, who = _open(
        blob, FINGERPRINT, signer=signer, hparams_hash=hparams_hash, window=window
    )
    return Fingerprint(
        header["window"], _floats(header["values"], "values"), header["hparams_hash"], who
    )


# --- verdicts ----------------------------------------------------------------------------
_VERDICT_FIGURES = ("gain", "fit_z", "evidence_z", "pay", "value")


def encode_verdicts(doc: Verdicts, key: SigningKey) -> bytes:
    def entry(v: Verdict) -> list:
        figures = [float(getattr(v, f)) for f in _VERDICT_FIGURES]
        figures = [x if math.isfinite(x) else 0.0 for x in figures]  # JSON holds no NaN
        return [v.uid, v.hotkey, v.verdict, v.reason[:MAX_REASON_CHARS], *figures]

    header = _base(doc.window, doc.hparams_hash) | {"verdicts": [entry(v) for v in doc.verdicts]}
    return pack_signed({}, header, key, kind=VERDICTS.kind)


def _verdict(item: object) -> Verdict:
    n = 4 + len(_VERDICT_FIGURES)
    if not isinstance(item, list) or len(item) != n:
        raise WireError("bad_value", f"a verdict must be a list of {n} fields, got {item!r:.80}")
    uid, hotkey, verdict, reason, *figures = item
    _peer_pairs([[uid, hotkey]], "verdicts")  # the same checks as a peer list's entries
    if verdict not in VERDICT_KINDS:
        raise WireError("bad_value", f"verdict must be one of {VERDICT_KINDS}, got {verdict!r:.40}")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise WireError("bad_value", f"a verdict's reason must be at most {MAX_REASON_CHARS} chars")
    return Verdict(uid, hotkey, verdict, reason, *_floats(figures, "a verdict's figures"))


def decode_verdicts(
    blob: bytes,
    *,
    signer: str | None = None,
    hparams_hash: str | None = None,
    window: int | None = None,
) -> Verdicts:
    header, _, who = _open(blob, VERDICTS, signer=signer, hparams_hash=hparams_hash, window=window)
    items = header["verdicts"]
    if not isinstance(items, list) or len(items) > MAX_PEERS:
        raise WireError("bad_value", f"verdicts must be a list of at most {MAX_PEERS}")
    verdicts = tuple(_verdict(item) for item in items)
    if len({v.uid for v in verdicts}) != len(verdicts):
        raise WireError("bad_value", "verdicts repeat a uid")
    return Verdicts(header["window"], verdicts, header["hparams_hash"], who)


# --- checkpoints -------------------------------------------------------------------------
def encode_checkpoint(doc: Checkpoint, key: SigningKey) -> bytes:
    header = _base(doc.window, doc.hparams_hash) | {"fingerprint": list(doc.fingerprint)}
    params = {n: t.detach().float().contiguous() for n, t in doc.params.items()}
    return pack_signed(params, header, key, kind=CHECKPOINT.kind)


def decode_checkpoint(
    blob: bytes,
    *,
    max_bytes: int,
    param_shapes: Mapping[str, tuple[int, ...]],
    signer: str | None = None,
    hparams_hash: str | None = None,
) -> Checkpoint:
    header, tensors, who = _open(
        blob, CHECKPOINT, max_bytes=max_bytes, signer=signer, hparams_hash=hparams_hash
    )
    if set(tensors) != set(param_shapes):
        raise WireError("unknown_key", "checkpoint parameters differ from this model's")
    for name, shape in param_shapes.items():
        if tuple(tensors[name].shape) != tuple(shape):
            raise WireError(
                "bad_shape", f"checkpoint {name} has shape {tuple(tensors[name].shape)}"
            )
    return Checkpoint(
        header["window"],
        _floats(header["fingerprint"], "fingerprint"),
        tensors,
        header["hparams_hash"],
        who,
    )


def checkpoint_size_cap(param_shapes: Mapping[str, tuple[int, ...]]) -> int:
    numel = sum(math.prod(s) for s in param_shapes.values())
    return 4 * numel + (1 << 20) + 256 * len(param_shapes)


def encode_latest(window: int, key_name: str, key: SigningKey) -> bytes:
    header = {"window": int(window), "key": key_name, "spec_version": SPEC_VERSION}
    return pack_signed({}, header, key, kind=LATEST.kind)


def decode_latest(blob: bytes, *, signer: str | None = None) -> tuple[int, str]:
    header, _, _ = _open(blob, LATEST, signer=signer)
    return header["window"], header["key"]
