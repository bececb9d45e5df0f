"""What a sharded run asks for, independent of the model and the training loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParallelConfig:
    """FSDP2 settings of a node (the same on every rank)."""

    mixed_precision: bool = True  # bf16 compute, fp32 master weights and reductions (CUDA only)
    activation_checkpointing: bool = False  # recompute each decoder layer in backward
    reshard_after_forward: bool = True  # ZeRO-3 style; False keeps layers gathered until backward
