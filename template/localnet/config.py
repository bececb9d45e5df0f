"""What a local subnet run is made of: counts, timing, folders and the dev-chain genesis."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

# Dev-chain genesis for a local run. An epoch every tempo + 1 = 11 blocks (about half a
# 20-block window) so incentive follows weights within one window; validators get their permit
# at the first epoch after staking; nothing is pruned during a run (immunity and activity
# cut-off far beyond any local run); one set_weights per window is well inside the rate limit.
# max_allowed_validators is set to the number of validators (genesis()): incentive is paid as
# stake, and with spare permits the miners would get permits too and count as validators.
GENESIS: dict[str, float | int] = {
    "tempo": 10,
    "immunity_period": 100_000,
    "weights_rate_limit": 2,
    "commitment_rate_limit": 1,
    "activity_cutoff": 100_000,
    "max_allowed_uids": 64,
    "max_allowed_validators": 8,
    "min_allowed_weights": 1,
    "max_weight_limit": 1.0,
    "burn": 1.0,
}


def genesis(validators: int) -> dict[str, float | int]:
    """GENESIS with exactly ``validators`` validator permits."""
    return {**GENESIS, "max_allowed_validators": validators}


NETUID = 1
FUND_TAO = 10_000.0  # each node's coldkey, from //Alice
VALIDATOR_STAKE_TAO = 1_000.0  # validator k stakes this minus 100*k (a clear leader)


@dataclass(frozen=True)
class LocalnetConfig:
    miners: int = 2
    validators: int = 1
    windows: int = 0  # stop after this many windows completed by the validators (0: run on)
    hparams: str = "tiny"
    block_time: float = 0.5
    run_dir: Path = field(default_factory=lambda: ROOT / "runs" / f"localnet-{_stamp()}")
    device: str = "cpu"
    dataset: str = "bucket"  # "bucket": upload to a dataset bucket; "path": --dataset.path
    dataset_path: Path | None = None  # an already prepared folder (skips preparation)
    corpus: Path | None = None  # a text file or folder; default: shared tinyshakespeare/stdlib
    corpus_limit: int = 2_000_000  # characters of the corpus used
    timeout: float = 0.0  # give up after this many seconds (0: never)
    metrics_base_port: int = 0  # node i serves metrics on base+i (0: off)
    threads_per_node: int = 1  # torch/OMP threads per neuron process
    log_level: str = "INFO"
    extra_args: tuple[str, ...] = ()  # appended to every neuron's command line
    miner_args: tuple[str, ...] = ()  # appended to the miners' command lines only
    validator_args: tuple[str, ...] = ()  # appended to the validators' command lines only
    neurons_dir: Path = ROOT / "neurons"  # miner.py and validator.py (tests swap in fakes)

    def __post_init__(self) -> None:
        if self.miners < 1 or self.validators < 1:
            raise ValueError("a local subnet needs at least one miner and one validator")
        if self.miners + self.validators > GENESIS["max_allowed_uids"]:
            raise ValueError(f"at most {GENESIS['max_allowed_uids']} nodes")
        if self.block_time < 0.1:
            raise ValueError("--block-time must be at least 0.1 s (the dev chain's minimum)")
        if self.windows < 0:
            raise ValueError("--windows must be >= 0")
        if self.dataset not in ("bucket", "path"):
            raise ValueError("--dataset must be 'bucket' or 'path'")

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())
