"""Typed chain errors. Each one says what the operator should do about it."""

from __future__ import annotations

from template.errors import HintedError


class ChainError(HintedError):
    """Base class of every error the Chain protocol raises."""


class NotRegisteredError(ChainError):
    hint = (
        "Register the hotkey on this subnet first: btcli subnets register --netuid N -w WALLET "
        "-H HOTKEY (dev chain: python -m template.chain.devchain register -w WALLET --netuid N)."
    )


class AlreadyRegisteredError(ChainError):
    hint = "The hotkey already holds a uid on this subnet; nothing to do."


class RateLimitedError(ChainError):
    hint = "Wait for the rate limit to pass (see the subnet's weights/commitment rate limit) and retry."


class TooManyRegistrationsError(RateLimitedError):
    hint = (
        "The subnet takes a limited number of registrations per block and per interval; "
        "retry in a few blocks."
    )


class NoValidatorPermitError(ChainError):
    hint = (
        "Stake more to the hotkey so it ranks among the subnet's top validators "
        "(btcli stake add --netuid N --amount-tao X -w WALLET -H HOTKEY), then wait an epoch."
    )


class StakeTooLowError(ChainError):
    hint = (
        "The stake is below the chain minimum, or the hotkey holds less than the stake threshold "
        "needed to set weights: btcli stake add --netuid N --amount-tao X -w WALLET -H HOTKEY."
    )


class CommitmentTooLargeError(ChainError):
    hint = "Shorten the commitment (at most max_commitment_bytes bytes)."


class InvalidWeightsError(ChainError):
    hint = "Send one finite, non-negative weight per known uid."


class InvalidRequestError(ChainError):
    hint = "The request was malformed or its signature did not verify; check the keys and the client version."


class SubnetNotFoundError(InvalidRequestError):
    hint = "Check --netuid: no subnet with that netuid exists on this chain (btcli subnets list -n NETWORK)."


class InsufficientBalanceError(ChainError):
    hint = "Fund the coldkey (on a local chain, transfer from a dev account) and retry."


class ConnectionLostError(ChainError):
    hint = "Check the endpoint (--subtensor.chain_endpoint) and the network; the client retries with back-off."
