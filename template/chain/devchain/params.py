"""Genesis and subnet hyperparameters of the dev chain (one dataclass, one place)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from ..types import MAX_COMMITMENT_BYTES

DEV_ACCOUNTS = ("//Alice", "//Bob", "//Charlie", "//Dave", "//Eve", "//Ferdie")
MAX_PARAM = 1e15  # no hyperparameter is larger; keeps every value a finite SQLite number


@dataclass(frozen=True)
class SubnetHyperparams:
    """One subnet's rules. Names follow subtensor's hyperparameters where one exists."""

    tempo: int = 10  # blocks between epochs (subtensor: 360)
    max_allowed_uids: int = 64
    max_allowed_validators: int = 8
    immunity_period: int = 50  # blocks a fresh registration cannot be pruned
    weights_rate_limit: int = 2  # blocks between two set_weights of one hotkey (subtensor: 100)
    min_allowed_weights: int = 1
    max_weight_limit: float = 1.0  # largest normalised weight one uid may get
    weights_version: int = 0  # set_weights with a lower version_key is rejected
    commitment_rate_limit: int = 1  # blocks between two commits of one hotkey
    max_commitment_bytes: int = MAX_COMMITMENT_BYTES
    activity_cutoff: int = 5000  # blocks without set_weights before a validator is inactive
    kappa: float = 32767 / 65535  # consensus majority (subtensor's default u16 32767)
    bonds_moving_average: float = 0.9  # EMA keeps this share of the old bonds
    bonds_penalty: float = 1.0  # 1: bonds grow from clipped weights only
    burn: float = 1.0  # TAO burned from the coldkey per registration
    emission_per_tempo: float = 1.0  # TAO emitted per epoch (owner cut, then 50/50)
    commit_reveal: int = 1  # 1: weights are committed hidden and revealed later (chain default)
    reveal_period_epochs: int = 1  # a commit made in epoch e is revealed when epoch e+this starts
    stake_threshold: float = 0.0  # stake a validator needs to set weights and count
    yuma3: int = 0  # 1: Yuma3 bonds (per-validator EMA of its own clipped weights)
    owner_cut: float = 0.18  # share of each epoch's emission paid to the owner hotkey
    validator_take: float = 0.18  # share of a validator's dividends kept by its own coldkey
    max_registrations_per_block: int = 1  # subtensor's MaxRegistrationsPerBlock default

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SubnetHyperparams:
        """Stored params; names a newer dev chain added take their defaults (old databases)."""
        return cls.with_overrides(cls(), json.loads(text))

    def with_overrides(self, overrides: dict) -> SubnetHyperparams:
        """A copy with ``overrides`` applied; unknown names or bad types raise ValueError."""
        known = {f.name: f for f in fields(self)}
        values = asdict(self)
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"unknown subnet hyperparameter {name!r}; known: {sorted(known)}")
            kind = int if known[name].type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"hyperparameter {name} must be a number, got {value!r}")
            if isinstance(value, int) and abs(value) > MAX_PARAM:
                raise ValueError(f"hyperparameter {name} must be at most {MAX_PARAM:g}")
            if not math.isfinite(value):
                raise ValueError(f"hyperparameter {name} must be finite, got {value!r}")
            if kind is int and float(value) != int(value):
                raise ValueError(f"hyperparameter {name} must be an integer, got {value!r}")
            values[name] = kind(value)
        out = SubnetHyperparams(**values)
        out.validate()
        return out

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or abs(value) > MAX_PARAM:
                raise ValueError(f"hyperparameter {f.name} must be finite and at most {MAX_PARAM}")
        if self.tempo < 1 or self.max_allowed_uids < 1 or self.max_allowed_validators < 1:
            raise ValueError("tempo, max_allowed_uids and max_allowed_validators must be >= 1")
        if self.max_allowed_uids > 4096:
            raise ValueError("max_allowed_uids must be <= 4096")
        if not 0.0 < self.max_weight_limit <= 1.0:
            raise ValueError("max_weight_limit must be in (0, 1]")
        unit = ("kappa", "bonds_moving_average", "bonds_penalty", "owner_cut", "validator_take")
        for name in unit:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.commit_reveal not in (0, 1) or self.yuma3 not in (0, 1):
            raise ValueError("commit_reveal and yuma3 must be 0 or 1")
        if min(self.immunity_period, self.weights_rate_limit, self.commitment_rate_limit) < 0:
            raise ValueError("periods and rate limits must be >= 0")
        if self.reveal_period_epochs < 1 or self.max_registrations_per_block < 1:
            raise ValueError("reveal_period_epochs and max_registrations_per_block must be >= 1")
        if min(self.burn, self.emission_per_tempo, self.min_allowed_weights) < 0:
            raise ValueError("burn, emission_per_tempo and min_allowed_weights must be >= 0")
        if self.stake_threshold < 0 or self.weights_version < 0 or self.activity_cutoff < 0:
            raise ValueError("stake_threshold, weights_version and activity_cutoff must be >= 0")
        if not 0 < self.max_commitment_bytes <= MAX_COMMITMENT_BYTES:
            raise ValueError(f"max_commitment_bytes must be in 1..{MAX_COMMITMENT_BYTES}")


@dataclass(frozen=True)
class Genesis:
    """What a fresh database starts with: one subnet owned by //Alice and funded dev accounts."""

    netuid: int = 1
    dev_balance: float = 1_000_000.0  # TAO given to each dev account
    subnet: SubnetHyperparams = SubnetHyperparams()

    @classmethod
    def from_overrides(cls, **overrides) -> Genesis:
        """Split keyword overrides into genesis fields and subnet hyperparameters."""
        netuid = int(overrides.pop("netuid", 1))
        dev_balance = float(overrides.pop("dev_balance", 1_000_000.0))
        return cls(netuid, dev_balance, SubnetHyperparams().with_overrides(overrides))
