"""Genesis and subnet hyperparameters of the dev chain (one dataclass, one place)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from ..types import MAX_COMMITMENT_BYTES

DEV_ACCOUNTS = ("//Alice", "//Bob", "//Charlie", "//Dave", "//Eve", "//Ferdie")


@dataclass(frozen=True)
class SubnetHyperparams:
    """One subnet's rules. Names follow subtensor's hyperparameters where one exists."""

    tempo: int = 10  # blocks between epochs (subtensor: 360)
    max_allowed_uids: int = 64
    max_allowed_validators: int = 8
    immunity_period: int = 50  # blocks a fresh registration cannot be pruned
    weights_rate_limit: int = 2  # blocks between two set_weights of one hotkey
    min_allowed_weights: int = 1
    max_weight_limit: float = 1.0  # largest normalised weight one uid may get
    weights_version: int = 0  # set_weights with a lower version_key is rejected
    commitment_rate_limit: int = 1  # blocks between two commits of one hotkey
    max_commitment_bytes: int = MAX_COMMITMENT_BYTES
    activity_cutoff: int = 5000  # blocks without set_weights before a validator is inactive
    kappa: float = 0.5  # consensus majority
    bonds_moving_average: float = 0.9  # EMA keeps this share of the old bonds
    bonds_penalty: float = 1.0  # 1: bonds grow from clipped weights only
    burn: float = 1.0  # TAO burned from the coldkey per registration
    emission_per_tempo: float = 1.0  # TAO split 50/50 miners/validators each epoch

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SubnetHyperparams:
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
            if kind is int and float(value) != int(value):
                raise ValueError(f"hyperparameter {name} must be an integer, got {value!r}")
            values[name] = kind(value)
        out = SubnetHyperparams(**values)
        out.validate()
        return out

    def validate(self) -> None:
        if self.tempo < 1 or self.max_allowed_uids < 1 or self.max_allowed_validators < 1:
            raise ValueError("tempo, max_allowed_uids and max_allowed_validators must be >= 1")
        if not 0.0 < self.max_weight_limit <= 1.0:
            raise ValueError("max_weight_limit must be in (0, 1]")
        if not 0.0 <= self.kappa <= 1.0 or not 0.0 <= self.bonds_moving_average <= 1.0:
            raise ValueError("kappa and bonds_moving_average must be in [0, 1]")
        if not 0.0 <= self.bonds_penalty <= 1.0:
            raise ValueError("bonds_penalty must be in [0, 1]")
        if min(self.immunity_period, self.weights_rate_limit, self.commitment_rate_limit) < 0:
            raise ValueError("periods and rate limits must be >= 0")
        if self.burn < 0 or self.emission_per_tempo < 0 or self.min_allowed_weights < 0:
            raise ValueError("burn, emission_per_tempo and min_allowed_weights must be >= 0")
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
