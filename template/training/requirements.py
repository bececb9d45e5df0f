"""Hardware and bandwidth a preset needs, derived from its shapes (feeds min_compute.yml)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from template.hparams import HParams

from .compression import chunk_layout

GB = 1e9
# windows of uploads a validator holds at once: the KEEP_WINDOWS of its window cache
# (validator/cache.py; stale-copy checks, peer lists) and the window it is gathering; only
# the window it is gathering is held decoded, the others as blobs
VALIDATOR_HELD_WINDOWS = 4
# bytes a decoded upload takes per sent value: an int64 index and a uint8 value code
DECODED_BYTES_PER_VALUE = 9


def tensor_sizes(hp: HParams) -> list[int]:
    """Element counts of the Llama-style model's tensors, from the config alone."""
    m = hp.model
    kv = m.num_kv_heads * (m.hidden_size // m.num_heads)
    h, i = m.hidden_size, m.intermediate_size
    layer = [h * h, h * kv, h * kv, h * h, h * i, h * i, i * h, h, h]  # q k v o gate up down, norms
    embeds = [m.vocab_size * h] * (1 if m.tie_embeddings else 2)
    return layer * m.num_layers + embeds + [h]


def param_count(hp: HParams) -> int:
    """Exact parameter count of the Llama-style model, from the config alone."""
    return sum(tensor_sizes(hp))


def sent_values(hp: HParams) -> int:
    """Values in one upload: what the compressor keeps of every tensor (``chunk_layout``)."""
    c = hp.compression
    return sum(int(chunk_layout(n, c.chunk, c.topk)[1].sum()) for n in tensor_sizes(hp))


def activation_bytes(hp: HParams, micro_batch: int) -> float:
    """Rough bf16 activation memory with no checkpointing: ~34 * s * b * h bytes per layer
    plus the fp32 logits (the usual transformer estimate)."""
    m = hp.model
    per_layer = 34 * m.seq_len * micro_batch * m.hidden_size
    logits = 4 * 2 * m.seq_len * micro_batch * m.vocab_size
    return m.num_layers * per_layer + logits


@dataclass(frozen=True)
class Requirements:
    params: int
    miner_gpu_gb: float
    validator_gpu_gb: float
    upload_mb: float
    miner_window_download_mb: float
    validator_window_download_mb: float
    validator_cache_gb: float  # uploads a validator holds: one window decoded, 4 sealed
    checkpoint_gb: float
    window_seconds: float


def requirements(
    hp: HParams,
    *,
    micro_batch: int = 8,
    block_seconds: float = 12.0,
    miners: int = 256,
    bits_per_param: float = 0.15,
) -> Requirements:
    p = param_count(hp)
    # miner: fp32 weights, grads, AdamW (2 states), error feedback, theta_start snapshot
    miner = 24 * p + activation_bytes(hp, micro_batch)
    # validator: fp32 weights, a working copy for one miner's delta, eval activations (no grads)
    validator = 8 * p + activation_bytes(hp, micro_batch) / 4
    upload = p * bits_per_param / 8
    peers = hp.window.peers_per_window + hp.window.reserve_peers
    return Requirements(
        params=p,
        miner_gpu_gb=miner / GB,
        validator_gpu_gb=validator / GB,
        upload_mb=upload / 1e6,
        miner_window_download_mb=peers * upload / 1e6,
        validator_window_download_mb=miners * upload / 1e6,
        validator_cache_gb=miners
        * (sent_values(hp) * DECODED_BYTES_PER_VALUE + VALIDATOR_HELD_WINDOWS * upload)
        / GB,
        checkpoint_gb=4 * p / GB,
        window_seconds=hp.window.blocks_per_window * block_seconds,
    )


def bandwidth_mbps(megabytes: float, seconds: float, headroom: float = 4.0) -> int:
    """Megabits per second to move ``megabytes`` in a quarter of ``seconds`` (headroom 4x)."""
    return math.ceil(megabytes * 8 * headroom / seconds)
