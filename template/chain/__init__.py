"""Chain access behind one protocol: bittensor v11 (``subtensor``) and the embedded dev chain."""

from .errors import (
    AlreadyRegisteredError,
    ChainError,
    CommitmentTooLargeError,
    ConnectionLostError,
    InsufficientBalanceError,
    InvalidRequestError,
    InvalidWeightsError,
    NotRegisteredError,
    NoValidatorPermitError,
    RateLimitedError,
)
from .protocol import Chain
from .types import MAX_COMMITMENT_BYTES, Metagraph, Neuron, SubnetParams, WeightsResult

__all__ = [
    "Chain",
    "ChainError",
    "AlreadyRegisteredError",
    "CommitmentTooLargeError",
    "ConnectionLostError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "InvalidWeightsError",
    "NoValidatorPermitError",
    "NotRegisteredError",
    "RateLimitedError",
    "MAX_COMMITMENT_BYTES",
    "Metagraph",
    "Neuron",
    "SubnetParams",
    "WeightsResult",
]
