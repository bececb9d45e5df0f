"""Typed values the Chain protocol returns."""

from __future__ import annotations

from dataclasses import dataclass, field

# One Raw field of subtensor's Commitments pallet holds at most 128 bytes. Both
# adapters enforce this limit so that what works on the dev chain works on finney.
MAX_COMMITMENT_BYTES = 128


@dataclass(frozen=True)
class SubnetParams:
    """The subnet hyperparameters the neurons need."""

    netuid: int
    tempo: int
    weights_rate_limit: int  # blocks between two set_weights by the same hotkey
    min_allowed_weights: int
    max_weight_limit: float  # largest share one uid may get, in [0, 1]
    max_commitment_bytes: int = MAX_COMMITMENT_BYTES
    commit_reveal: bool = False  # weights are committed hidden and revealed later
    reveal_period_epochs: int = 1  # epochs between a commit and its reveal
    weights_version: int = 0  # set_weights with a lower version_key is refused
    stake_threshold: float = 0.0  # stake (alpha/TAO) a validator needs to count in the epoch
    last_epoch_block: int = 0  # block of the subnet's last epoch (0: unknown)
    owner_uid: int | None = None  # uid of the subnet owner's hotkey (None: it holds none)

    def reveal_delay_blocks(self) -> int:
        """Worst-case blocks from a set_weights until the weights are in force on chain."""
        if not self.commit_reveal:
            return 1
        # a commit of epoch e is revealed when epoch e + period starts: <= period * tempo later
        # (plus slack: the chain retries a reveal during the epoch until drand's pulse is in)
        return self.reveal_period_epochs * max(1, self.tempo) + max(2, self.tempo // 10)


@dataclass(frozen=True)
class Neuron:
    """One uid of the subnet's metagraph."""

    uid: int
    hotkey: str
    coldkey: str
    stake: float  # in TAO (alpha on dynamic subnets, as the chain reports it)
    validator_permit: bool
    last_update: int  # block of the last set_weights
    incentive: float
    dividends: float
    consensus: float
    trust: float
    emission: float
    registered_at: int = 0  # block the hotkey took this uid


@dataclass(frozen=True)
class Metagraph:
    """A snapshot of the subnet at one block."""

    netuid: int
    block: int
    neurons: tuple[Neuron, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.neurons)

    def by_hotkey(self, hotkey: str) -> Neuron | None:
        for n in self.neurons:
            if n.hotkey == hotkey:
                return n
        return None

    def by_uid(self, uid: int) -> Neuron | None:
        for n in self.neurons:
            if n.uid == uid:
                return n
        return None

    @property
    def hotkeys(self) -> list[str]:
        return [n.hotkey for n in self.neurons]


@dataclass(frozen=True)
class WeightsResult:
    """What happened to a set_weights call."""

    success: bool
    block: int | None = None
    message: str = ""
