"""Run hyperparameters: typed, loaded from a TOML file or a named preset, hashed for consensus.

Every node of a run must hold the same ``HParams``; ``hparams_hash`` goes into each
upload header and peers whose hash differs are not mixed in. Settings that do not
change the math other nodes see (device, micro-batch size, paths) are not here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

PRESETS = ("tiny", "150m", "1b", "8b")


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-style decoder (built by ``template.training.model``)."""

    vocab_size: int = 257
    hidden_size: int = 128
    intermediate_size: int = 352
    num_layers: int = 5
    num_heads: int = 4
    num_kv_heads: int = 4
    seq_len: int = 128
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    init_seed: int = 0  # every node builds the same initial weights from this


@dataclass(frozen=True)
class TrainConfig:
    """The inner loop: H AdamW steps per window."""

    inner_steps: int = 15  # H
    batch_size: int = 16  # sequences per inner step (split into micro-batches locally)
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30  # inner steps
    total_steps: int = 6000  # inner steps over which the cosine decays
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0


@dataclass(frozen=True)
class CompressionConfig:
    """SparseLoCo: error feedback, chunked top-k, 2-bit values."""

    chunk: int = 4096
    topk: int = 64
    ef_beta: float = 0.95
    value_bits: int = 2

    @property
    def density(self) -> float:
        return self.topk / self.chunk


@dataclass(frozen=True)
class OuterConfig:
    """How the selected peers' deltas become the next global model."""

    method: str = "sparseloco"  # or "diloco" (dense, outer Nesterov SGD)
    lr: float = 1.0  # sparseloco outer learning rate
    diloco_lr: float = 0.7
    diloco_momentum: float = 0.9
    clip_to_median: bool = True


@dataclass(frozen=True)
class DataConfig:
    """How the token stream is cut into pages and split into assignable and held-out ranges."""

    seqs_per_page: int = 8  # a page is seqs_per_page sequences of seq_len + 1 tokens
    heldout_fraction: float = 0.05  # the last pages of the stream; never assigned
    seed: int = 0
    # The tokenizer every node's dataset must be made with: "byte", or "sha256:<hex>" of the
    # owner's tokenizer.json (seed-train-tokenizer prints it; docs/owner.md).
    tokenizer: str = "byte"


@dataclass(frozen=True)
class WindowConfig:
    """Timing of the window protocol, in blocks (see template/protocol/windows.py)."""

    blocks_per_window: int = 20
    upload_blocks: int = 4  # window w's uploads must land within this many blocks after it ends
    grace_blocks: int = 1  # tolerance on the upload deadline for clock and listing skew
    reveal_blocks: int = 3  # seal keys of w: out from cut-off + 1, due before cut-off + this
    publish_blocks: int = 10  # the leader's peer list for w is due this many blocks after w ends
    peers_per_window: int = 8  # top-G uploads aggregated each window
    reserve_peers: int = 2  # next-best uploads listed in case a peer's object disappears
    checkpoint_every: int = 10  # windows between the leader's checkpoints
    leader_timeout_windows: int = 3  # a leader silent this long is passed over


@dataclass(frozen=True)
class HParams:
    name: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    window: WindowConfig = field(default_factory=WindowConfig)

    @property
    def page_tokens(self) -> int:
        return self.data.seqs_per_page * (self.model.seq_len + 1)

    @property
    def pages_per_window(self) -> int:
        """Pages each miner trains on per window: enough sequences for H steps of batch_size."""
        seqs = self.train.inner_steps * self.train.batch_size
        return -(-seqs // self.data.seqs_per_page)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> HParams:
        """A copy with dotted overrides applied, e.g. ``replace(**{"train.inner_steps": 5})``."""
        return from_dict(_apply_overrides(self.to_dict(), overrides))


class HParamsError(ValueError):
    """A hyperparameter file is malformed; the message names the key."""


def hparams_hash(hp: HParams) -> str:
    """A stable sha256 over the canonical JSON of every field (the name is included)."""
    blob = json.dumps(hp.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise HParamsError(f"[{where}] must be a table, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise HParamsError(f"unknown key(s) in [{where}]: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = known[name]
        nested = f.default_factory
        if nested is not dataclasses.MISSING and dataclasses.is_dataclass(nested):
            kwargs[name] = _build(nested, value, f"{where}.{name}".strip("."))
            continue
        default = f.default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise HParamsError(f"{where}.{name} must be true or false, got {value!r}")
        is_int = isinstance(default, int) and not isinstance(default, bool)
        if is_int and (isinstance(value, bool) or not isinstance(value, int)):
            raise HParamsError(f"{where}.{name} must be an integer, got {value!r}")
        if isinstance(default, float) and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise HParamsError(f"{where}.{name} must be a number, got {value!r}")
        if isinstance(default, str) and not isinstance(value, str):
            raise HParamsError(f"{where}.{name} must be a string, got {value!r}")
        kwargs[name] = float(value) if isinstance(default, float) else value
    return cls(**kwargs)


def from_dict(data: dict[str, Any]) -> HParams:
    hp = _build(HParams, data, "")
    validate(hp)
    return hp


def validate(hp: HParams) -> None:
    """Reject values that cannot work, naming the key."""
    m, t, c, o, w = hp.model, hp.train, hp.compression, hp.outer, hp.window
    checks = [
        (
            m.hidden_size % m.num_heads == 0,
            "model.hidden_size must be divisible by model.num_heads",
        ),
        (
            m.num_heads % m.num_kv_heads == 0,
            "model.num_heads must be divisible by model.num_kv_heads",
        ),
        (t.inner_steps >= 1, "train.inner_steps must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (0 < c.topk <= c.chunk, "compression.topk must be in (0, compression.chunk]"),
        (c.value_bits == 2, "compression.value_bits: only 2-bit values are implemented"),
        (0.0 <= c.ef_beta <= 1.0, "compression.ef_beta must be in [0, 1]"),
        (o.method in ("sparseloco", "diloco"), "outer.method must be 'sparseloco' or 'diloco'"),
        (0.0 < hp.data.heldout_fraction < 0.5, "data.heldout_fraction must be in (0, 0.5)"),
        (w.blocks_per_window >= 2, "window.blocks_per_window must be >= 2"),
        (
            0 < w.upload_blocks + w.grace_blocks < w.publish_blocks < w.blocks_per_window,
            "window: need 0 < upload_blocks + grace_blocks < publish_blocks < blocks_per_window",
        ),
        (
            w.reveal_blocks >= 2
            and w.upload_blocks + w.grace_blocks + w.reveal_blocks < w.publish_blocks,
            "window: need reveal_blocks >= 2 and upload_blocks + grace_blocks + reveal_blocks < "
            "publish_blocks (the leader needs revealed uploads before its deadline)",
        ),
        (w.leader_timeout_windows >= 1, "window.leader_timeout_windows must be >= 1"),
        (w.peers_per_window >= 1, "window.peers_per_window must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise HParamsError(message)


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            if p not in node or not isinstance(node[p], dict):
                raise HParamsError(f"unknown section in override {dotted!r}")
            node = node[p]
        if leaf not in node:
            raise HParamsError(f"unknown key in override {dotted!r}")
        node[leaf] = value
    return data


def load_hparams(name_or_path: str | Path = "tiny") -> HParams:
    """Load a preset by name (``tiny``, ``150m``, ``1b``, ``8b``) or a TOML file by path."""
    text: str
    if str(name_or_path) in PRESETS:
        text = resources.files("template.presets").joinpath(f"{name_or_path}.toml").read_text()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise HParamsError(
                f"no hyperparameter preset or file named {str(name_or_path)!r}; "
                f"use one of {', '.join(PRESETS)} or a path to a .toml file"
            )
        text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HParamsError(f"{name_or_path}: not valid TOML: {e}") from None
    return from_dict(data)
