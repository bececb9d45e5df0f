"""Typed storage errors. Each message says what the operator (or the calling loop) should do."""

from __future__ import annotations

from template.errors import HintedError


class StorageError(HintedError):
    """Base class of every error the storage layer raises."""


class ConfigError(StorageError, ValueError):
    hint = "Fix the storage settings (see docs/storage.md for the variables and the config file)."


class CommitmentError(StorageError, ValueError):
    hint = "See docs/storage.md for the commitment format."


class ObjectNotFound(StorageError):
    hint = (
        "The uploader has not written it (yet), or it was deleted; skip this peer or retry later."
    )


class BucketNotFound(ObjectNotFound):
    hint = "Check the bucket name and endpoint, or create the bucket (create_bucket) first."


class AccessDenied(StorageError):
    hint = "Check the access key id and secret, and that the key may read (or write) this bucket."


class ObjectTooLarge(StorageError):
    hint = (
        "The object is larger than the caller's cap; it was not read. Treat the upload as invalid."
    )


class ChecksumMismatch(StorageError):
    hint = "The bytes differ from what the uploader signed; treat the object as invalid."


class InvalidManifest(StorageError, ValueError):
    hint = "Re-create the dataset with scripts/prepare_dataset.py and upload it again."


class TransientStorageError(StorageError):
    """The request kept failing (throttling, 5xx, connection errors) after every retry."""

    hint = "The endpoint is unhealthy or throttling; retry later or skip this peer for this window."


class TransferTimeout(TransientStorageError):
    hint = "The endpoint is too slow; retry later, raise the timeout, or skip this peer."


class TruncatedObject(TransientStorageError):
    hint = "The connection closed before the whole object arrived; retry later or skip this peer."


class ForbiddenAddress(StorageError):
    """A peer's endpoint is (or resolves to) a loopback, private, link-local or metadata address."""

    hint = (
        "A peer's bucket must be on a public address; private addresses are allowed only on a "
        "local subnet (--allow-private)."
    )
