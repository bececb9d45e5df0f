"""Translate bittensor SDK failures into the project's typed chain errors.

The SDK reports a failed extrinsic as ``ExtrinsicResult(success=False, error=bt.ChainError)``
whose ``error`` carries the chain error ``name`` (e.g. ``HotKeyNotRegisteredInSubNet``) and a
classified ``ErrorCode``. Transport failures surface as ``bt.RpcConnectionError`` /
``bt.ConnectionNotReady`` or plain ``OSError``/``TimeoutError``. Everything the adapter raises
goes through :func:`to_chain_error`, so callers only ever see ``ChainError`` subclasses.
"""

from __future__ import annotations

import bittensor as bt
from bittensor.error_map import ErrorCode

from .errors import (
    AlreadyRegisteredError,
    ChainError,
    ConnectionLostError,
    InsufficientBalanceError,
    InvalidRequestError,
    InvalidWeightsError,
    NotRegisteredError,
    NoValidatorPermitError,
    RateLimitedError,
    StakeTooLowError,
    SubnetNotFoundError,
    TooManyRegistrationsError,
)

# Chain error names that need a more specific class than their ErrorCode gives.
_BY_NAME: dict[str, type[ChainError]] = {
    "HotKeyAlreadyRegisteredInSubNet": AlreadyRegisteredError,
    "NeuronNoValidatorPermit": NoValidatorPermitError,
    "NotEnoughStakeToSetWeights": StakeTooLowError,
    "StakeAmountTooLow": StakeTooLowError,  # pool code 1: AmountTooLow | NotEnoughStake...
    "AmountTooLow": StakeTooLowError,
    "TooManyRegistrationsThisBlock": TooManyRegistrationsError,
    "TooManyRegistrationsThisInterval": TooManyRegistrationsError,
    "SubnetNotExists": SubnetNotFoundError,
    "MechanismDoesNotExist": SubnetNotFoundError,
    "AccountNotAllowedCommit": NotRegisteredError,  # commitments need a registered hotkey
    "SpaceLimitExceeded": RateLimitedError,  # per-epoch commitment byte quota
    "IncorrectWeightVersionKey": InvalidRequestError,
}

_BY_CODE: dict[ErrorCode, type[ChainError]] = {
    ErrorCode.NOT_REGISTERED: NotRegisteredError,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.INSUFFICIENT_BALANCE: InsufficientBalanceError,
    ErrorCode.ALREADY_EXISTS: AlreadyRegisteredError,
    ErrorCode.INVALID_ARGUMENT: InvalidRequestError,
    ErrorCode.NOT_AUTHORIZED: InvalidRequestError,
    ErrorCode.SUBNET_NOT_EXISTS: SubnetNotFoundError,
    ErrorCode.DISABLED: InvalidRequestError,
    ErrorCode.LIMIT_EXCEEDED: InvalidRequestError,
}

# Weight-specific chain errors: the request itself was bad.
_WEIGHT_ERRORS = {
    "WeightVecLengthIsLow",
    "WeightVecNotEqualSize",
    "DuplicateUids",
    "UidVecContainInvalidOne",
    "UidsLengthExceedUidsInSubNet",
    "MaxWeightExceeded",
}

# Pool rejections that clear up within a block (same list the SDK's executor retries on).
_TRANSIENT_MESSAGES = ("priority is too low", "transaction is outdated", "stale")

TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    bt.RpcConnectionError,
    bt.ConnectionNotReady,
    ConnectionError,
    OSError,
    TimeoutError,
)


# What a node says when asked for state it has pruned (non-archive nodes keep ~256 blocks).
_PRUNED_MESSAGES = ("state already discarded", "unknownblock", "unknown block", "pruned")


def is_pruned_state(error: BaseException) -> bool:
    """True when a read failed because the node no longer holds that block's state."""
    text = f"{getattr(error, 'message', '') or ''} {error}".lower()
    return any(m in text for m in _PRUNED_MESSAGES)


def is_transient(error: BaseException) -> bool:
    """True for failures worth a reconnect and retry (never for chain-side rejections)."""
    if isinstance(error, ConnectionLostError):
        return True
    if isinstance(error, TRANSIENT_EXCEPTIONS):
        return True
    if isinstance(error, bt.ChainError):
        return any(m in (error.message or "").lower() for m in _TRANSIENT_MESSAGES)
    return False


def to_chain_error(error: BaseException, action: str, *, weights: bool = False) -> ChainError:
    """The typed project error for an SDK exception raised while doing ``action``."""
    if isinstance(error, ChainError):
        return error
    if isinstance(error, TRANSIENT_EXCEPTIONS):
        return ConnectionLostError(f"{action}: connection to the chain failed ({error})")
    if isinstance(error, bt.ChainError):
        name = error.name or ""
        message = f"{action} failed: {error.message}" + (f" [{name}]" if name else "")
        bad_weights = name in _WEIGHT_ERRORS or error.code is ErrorCode.INVALID_ARGUMENT
        if weights and bad_weights and name != "IncorrectWeightVersionKey":
            return InvalidWeightsError(message)
        cls = _BY_NAME.get(name) or _BY_CODE.get(error.code, ChainError)
        return cls(message)
    if isinstance(error, bt.BittensorError):
        cls = InvalidWeightsError if weights else InvalidRequestError
        return cls(f"{action} failed: {error}")
    return ChainError(f"{action} failed: {type(error).__name__}: {error}")


def raise_for_result(result: bt.ExtrinsicResult, action: str, *, weights: bool = False) -> None:
    """Raise the typed error of a failed ``ExtrinsicResult``; return quietly on success."""
    if result.success:
        return
    error = result.error or bt.ChainError(result.message or "extrinsic failed")
    raise to_chain_error(error, action, weights=weights)
