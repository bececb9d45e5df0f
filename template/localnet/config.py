"""What a local subnet run is made of: counts, timing, folders and the dev-chain genesis."""

from __future__ import annotations

import argparse
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from template.node.flags import (
    NON_NEGATIVE,
    PORT,
    ConfigError,
    at_least,
    check_settings,
    one_of,
    setting,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

# Dev-chain genesis for a local run. An epoch every tempo = 10 blocks (about half a
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


def _words(text: str) -> tuple[str, ...]:
    return tuple(shlex.split(text))


CGROUP_QUOTA_FILES = (
    ("/sys/fs/cgroup/cpu.max", None),  # cgroup v2: "<quota> <period>" or "max <period>"
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),  # v1
)


def cgroup_cpu_limit(files=CGROUP_QUOTA_FILES) -> float | None:
    """The container's CPU quota in cores (a `docker --cpus` limit), None when unlimited or
    unknown: the affinity of a container still lists every core of its host."""
    for quota_file, period_file in files:
        try:
            words = Path(quota_file).read_text().split()
            if period_file is not None:
                words = [words[0], Path(period_file).read_text().strip()]
            quota, period = words[0], float(words[1])
        except (OSError, IndexError, ValueError):
            continue
        if quota in ("max", "-1") or period <= 0:
            return None
        try:
            return float(quota) / period if float(quota) > 0 else None
        except ValueError:
            return None
    return None


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity (where the OS reports it), at most the
    container's CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0)) or 1
    else:
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cores, int(limit))) if limit else cores


@dataclass(frozen=True)
class LocalnetConfig:
    """A local run; each field with help is a flag of ``seed-localnet`` (template/node/flags.py)."""

    miners: int = setting(2, "Miner processes.", at_least(1), flag="--miners")
    validators: int = setting(1, "Validator processes.", at_least(1), flag="--validators")
    windows: int = setting(
        0,
        "Stop after this many windows completed by the validators (0: run until Ctrl-C).",
        NON_NEGATIVE,
        flag="--run.max-windows",
    )
    hparams: str = setting("tiny", "Preset or TOML file of every neuron.", flag="--hparams")
    block_time: float = setting(
        1.0,
        "Dev chain seconds per block (the dev chain's minimum is 0.1). At 1 s a tiny window is "
        "20 s: on 2 shared cores the leader then publishes before its deadline, so miners train "
        "from the latest aggregate (at 0.5 s it was late in most windows).",
        at_least(0.1),
        flag="--chain.block-time",
    )
    run_dir: Path = setting(
        None,
        "Run folder (default runs/localnet-<UTC time> under the current folder).",
        flag="--run.dir",
        type=Path,
        factory=lambda: Path("runs").resolve() / f"localnet-{_stamp()}",
    )
    device: str = setting("cpu", "Torch device of every neuron.", flag="--device")
    dataset: str = setting(
        "bucket",
        "bucket: upload the shards to a dataset bucket the neurons sync from; path: give the "
        "neurons the local folder.",
        one_of("bucket", "path"),
        flag="--dataset.source",
    )
    dataset_path: Path | None = setting(
        None,
        "An already prepared dataset folder (skips preparation).",
        flag="--dataset.path",
        type=Path,
    )
    corpus: Path | None = setting(
        None,
        "Text file or folder to prepare (default: shared tinyshakespeare, else stdlib).",
        flag="--dataset.corpus",
        type=Path,
    )
    corpus_limit: int = setting(
        2_000_000, "Characters of the corpus used.", at_least(1), flag="--dataset.corpus-limit"
    )
    timeout: float = setting(
        0.0, "Give up after this many seconds (0: never).", NON_NEGATIVE, flag="--run.timeout"
    )
    metrics_base_port: int = setting(
        0,
        "Node i serves Prometheus metrics on 127.0.0.1:PORT+i (0: off).",
        PORT,
        flag="--metrics.port",
    )
    threads_per_node: int = setting(
        1, "Torch/OMP threads per miner process.", at_least(1), flag="--neuron.threads"
    )
    validator_threads: int = setting(
        0,
        "Torch/OMP threads per validator process (0: the machine's cores, at most a "
        "container's CPU quota, shared among the validators and a validator's ranks). A "
        "validator evaluates while the miners wait for its aggregate; with one thread on 2 "
        "cores the tiny leader missed its publish deadline, and 39 of 45 miner windows were "
        "trained without it.",
        NON_NEGATIVE,
        flag="--validator.threads",
    )

    log_level: str = "INFO"  # --logging.level / --logging.debug (template/node/logs.py)
    extra_args: tuple[str, ...] = ()  # after --: appended to every neuron's command line
    miner_args: tuple[str, ...] = setting(
        (),
        'Extra flags for the miners, e.g. --miner.args="--miner.max-steps 5".',
        flag="--miner.args",
        type=_words,
    )
    miner_ranks: int = setting(
        1,
        "Run the first miner as this many torch.distributed ranks (FSDP2; gloo on CPU). "
        "docs/multi_gpu.md.",
        at_least(1),
        flag="--miner.ranks",
    )
    validator_ranks: int = setting(
        1,
        "Run the first validator as this many torch.distributed ranks (FSDP2; gloo on CPU). "
        "docs/multi_gpu.md.",
        at_least(1),
        flag="--validator.ranks",
    )
    validator_args: tuple[str, ...] = setting(
        (),
        'Extra flags for the validators, e.g. --validator.args="--judge.alpha 0.1".',
        flag="--validator.args",
        type=_words,
    )
    # Folder holding miner.py and validator.py to run instead of the real neurons (tests swap in
    # fakes); None runs ``python -m template.commands.<role>``.
    neurons_dir: Path | None = setting(None, argparse.SUPPRESS, flag="--neurons.dir", type=Path)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.miners + self.validators > GENESIS["max_allowed_uids"]:
            raise ConfigError(
                f"--miners + --validators must be <= {GENESIS['max_allowed_uids']} "
                f"(got {self.miners + self.validators})"
            )

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    def threads_of(self, role: str, ranks: int = 1) -> int:
        """Torch threads of each process of a ``role`` ("miner" or "validator") node run as
        ``ranks`` processes: a miner's are set per process, a validator's share is split."""
        if role != "validator":
            return self.threads_per_node
        share = self.validator_threads or usable_cores() // self.validators
        return max(1, share // ranks)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())
