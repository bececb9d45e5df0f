"""Server-side rule violations: a stable code, an HTTP status and a message naming the problem."""

from __future__ import annotations

from .. import errors as chain_errors

# code -> (HTTP status, client exception class)
CODES: dict[str, tuple[int, type[chain_errors.ChainError]]] = {
    "invalid_request": (400, chain_errors.InvalidRequestError),
    "bad_signature": (401, chain_errors.InvalidRequestError),
    "replayed": (409, chain_errors.InvalidRequestError),
    "outdated_version": (400, chain_errors.InvalidRequestError),
    "subnet_full": (409, chain_errors.InvalidRequestError),
    "not_found": (404, chain_errors.InvalidRequestError),
    "not_registered": (404, chain_errors.NotRegisteredError),
    "already_registered": (409, chain_errors.AlreadyRegisteredError),
    "rate_limited": (429, chain_errors.RateLimitedError),
    "no_validator_permit": (403, chain_errors.NoValidatorPermitError),
    "not_owner": (403, chain_errors.InvalidRequestError),
    "commitment_too_large": (413, chain_errors.CommitmentTooLargeError),
    "invalid_weights": (400, chain_errors.InvalidWeightsError),
    "insufficient_balance": (402, chain_errors.InsufficientBalanceError),
    "subnet_not_found": (404, chain_errors.SubnetNotFoundError),
    "stake_too_low": (403, chain_errors.StakeTooLowError),
    "too_many_registrations": (429, chain_errors.TooManyRegistrationsError),
    "commit_reveal_on": (409, chain_errors.InvalidRequestError),
}


class DevChainError(Exception):
    """A request the dev chain refuses; becomes a 4xx JSON error ``{"error": {code, message}}``."""

    def __init__(self, code: str, message: str):
        assert code in CODES, code
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def status(self) -> int:
        return CODES[self.code][0]


def to_chain_error(code: str, message: str) -> chain_errors.ChainError:
    """The typed client exception for a server error code (unknown codes: InvalidRequestError)."""
    cls = CODES.get(code, (400, chain_errors.InvalidRequestError))[1]
    return cls(message)
