"""GPU memory per rank of a sharded miner, from the preset's parameter count.

Per rank, with P parameters, N ranks, micro-batch b (sequences per forward on one rank):

- sharded fp32 state, 24 P / N bytes: master weights (4), gradients (4), AdamW moments (8),
  error-feedback buffer (4) and the global copy theta_start (4);
- gathered working set: bf16 weights of two decoder layers (the current one and the
  prefetched next), bf16 embedding and output matrices while the root runs, fp32 unsharded
  gradients of one layer before its reduce-scatter;
- activations: ``template.training.requirements.activation_bytes`` (about 34 s b h bytes per layer plus
  fp32 logits); with activation checkpointing only each layer's bf16 input (2 s b h) is kept,
  plus one layer recomputed in full and the logits;
- 1.5 GB of CUDA context, NCCL buffers and allocator slack.

``python -m template.parallel.memory`` prints the table of docs/multi_gpu.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from template.hparams import PRESETS, HParams, load_hparams
from template.training.requirements import activation_bytes, param_count

GB = 1e9
OVERHEAD_GB = 1.5
USABLE = 0.9  # plan for 90% of a card: fragmentation and spikes
GPU_COUNTS = (1, 2, 4, 8, 16)
MICRO_BATCHES = (8, 4, 2, 1)


@dataclass(frozen=True)
class RankMemory:
    gpus: int
    micro_batch: int
    checkpointing: bool
    state_gb: float
    gathered_gb: float
    activations_gb: float

    @property
    def total_gb(self) -> float:
        return self.state_gb + self.gathered_gb + self.activations_gb + OVERHEAD_GB


def embedding_params(hp: HParams) -> int:
    m = hp.model
    return m.vocab_size * m.hidden_size * (1 if m.tie_embeddings else 2)


def rank_memory(hp: HParams, gpus: int, micro_batch: int, checkpointing: bool) -> RankMemory:
    m = hp.model
    p = param_count(hp)
    embed = embedding_params(hp)
    layer = (p - embed - m.hidden_size) / m.num_layers
    b = max(1, min(micro_batch, hp.train.batch_size // gpus))
    gathered = 2 * 2 * layer + 2 * embed + 4 * layer
    if checkpointing:
        acts = m.num_layers * 2 * m.seq_len * b * m.hidden_size + activation_bytes(
            hp.replace(**{"model.num_layers": 1}), b
        )
    else:
        acts = activation_bytes(hp, b)
    return RankMemory(gpus, b, checkpointing, 24 * p / gpus / GB, gathered / GB, acts / GB)


def fitting(hp: HParams, gpus: int, vram_gb: float = 80.0) -> RankMemory | None:
    """The largest micro-batch that fits ``gpus`` cards of ``vram_gb`` (checkpointing only
    when nothing fits without it), or None."""
    for ckpt in (False, True):
        for b in MICRO_BATCHES:
            r = rank_memory(hp, gpus, b, ckpt)
            if r.total_gb <= USABLE * vram_gb:
                return r
    return None


def cuda_plan(hp: HParams, gpus: int, micro_batch: int, checkpointing: bool) -> tuple[int, bool]:
    """(micro-batch, activation checkpointing) for ``gpus`` cards of the visible GPU's size:
    the given ones when ``micro_batch`` > 0, else the largest plan ``fitting`` finds."""
    if micro_batch > 0:
        return micro_batch, checkpointing
    import torch

    vram = torch.cuda.get_device_properties(0).total_memory / GB
    r = fitting(hp, gpus, vram)
    return (1, True) if r is None else (r.micro_batch, r.checkpointing or checkpointing)


def min_gpus(hp: HParams, vram_gb: float = 80.0) -> RankMemory | None:
    """The fewest GPUs of ``vram_gb`` that hold the sharded miner (None: more than 16)."""
    for n in GPU_COUNTS:
        if hp.train.batch_size % n == 0 and (r := fitting(hp, n, vram_gb)) is not None:
            return r
    return None


def _cell(hp: HParams, n: int, vram_gb: float) -> str:
    if hp.train.batch_size % n:
        return "n/a"
    r = fitting(hp, n, vram_gb)
    if r is None:
        return f"does not fit ({rank_memory(hp, n, 1, True).total_gb:.0f} at b=1, ckpt)"
    return f"{r.total_gb:.1f} (b={r.micro_batch}{', ckpt' if r.checkpointing else ''})"


def table(presets=PRESETS, counts=GPU_COUNTS[:4], vram_gb: float = 80.0) -> str:
    """Markdown: GB per rank of the largest micro-batch that fits each GPU count."""
    head = "| preset | params | 24 B/param | " + " | ".join(f"{n} GPU" for n in counts) + " |"
    lines = [head, "|" + "---|" * (len(counts) + 3)]
    for name in presets:
        hp = load_hparams(name)
        p = param_count(hp)
        cells = " | ".join(_cell(hp, n, vram_gb) for n in counts)
        lines.append(f"| {name} | {p / 1e9:.3f}B | {24 * p / GB:.1f} GB | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    sys.exit(0)
