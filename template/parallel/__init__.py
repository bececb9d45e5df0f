"""Multi-GPU nodes: one process per device under ``torchrun``, the model sharded with FSDP2.

Kept apart the way torchtitan keeps them apart:

- ``config``: what a sharded run asks for (mixed precision, activation checkpointing).
- ``dist``: the process group, the rank facts, object broadcasts from rank 0.
- ``shard``: applying ``fully_shard`` to the model and locating each rank's flat slice.
- ``compress`` / ``apply``: error feedback, chunked top-k and the outer step on shards, giving
  the single-process results (same indices, codes and weights).
- ``train``: one data-parallel inner step; ``trainer``: the miner's window, driven by rank 0.
- ``checkpoint``: sharded save/load with ``torch.distributed.checkpoint``.
- ``evaluate``: the validator's losses with all ranks participating.

Nothing here changes what other nodes see: an upload is byte-for-byte the single-process wire
format, produced on rank 0.
"""
