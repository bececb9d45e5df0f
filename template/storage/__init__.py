"""Object storage: one S3-compatible bucket per node, read by others with published read keys.

- ``config``      BucketConfig / NodeStorageConfig, loaded from env or a TOML/JSON file
- ``keys``        every object name (versioned by SPEC_VERSION)
- ``commitment``  the <=128-byte chain commitment carrying a bucket and its read-only keys
- ``client``      StorageClient: async put/get/head/list/delete with retries, timeouts, caps
- ``transfer``    TransferConfig, object metadata, the boto3 client factory, the capped body reader
- ``gather``      bounded, time-budgeted downloads from many buckets
- ``retention``   delete own objects older than N windows
- ``datasets``    token-shard datasets: strict manifest, verified cache, upload
- ``netguard``    peers' endpoints: public addresses only, checked at connect time
- ``local_server`` a loopback S3 endpoint (moto) for tests and the local subnet
"""

from .client import FetchedObject, ObjectInfo, StorageClient, TransferConfig, sha256_hex
from .commitment import (
    decode_commitment,
    decode_commitment_strict,
    encode_commitment,
    parse_commitments,
)
from .config import (
    BucketConfig,
    NodeStorageConfig,
    aws_bucket,
    load_read_bucket,
    load_storage_config,
    r2_bucket,
)
from .datasets import DatasetManifest, ShardInfo, parse_manifest, sync_dataset, upload_dataset
from .errors import (
    AccessDenied,
    BucketNotFound,
    ChecksumMismatch,
    CommitmentError,
    ConfigError,
    ForbiddenAddress,
    InvalidManifest,
    ObjectNotFound,
    ObjectTooLarge,
    StorageError,
    TransferTimeout,
    TransientStorageError,
    TruncatedObject,
)
from .gather import GetRequest, gather
from .retention import delete_old_objects
from .retry import RetryPolicy

__all__ = [
    "AccessDenied",
    "BucketConfig",
    "BucketNotFound",
    "ChecksumMismatch",
    "CommitmentError",
    "ConfigError",
    "ForbiddenAddress",
    "DatasetManifest",
    "FetchedObject",
    "GetRequest",
    "InvalidManifest",
    "NodeStorageConfig",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectTooLarge",
    "RetryPolicy",
    "ShardInfo",
    "StorageClient",
    "StorageError",
    "TransferConfig",
    "TransferTimeout",
    "TransientStorageError",
    "TruncatedObject",
    "aws_bucket",
    "decode_commitment",
    "decode_commitment_strict",
    "delete_old_objects",
    "encode_commitment",
    "gather",
    "load_read_bucket",
    "load_storage_config",
    "parse_commitments",
    "parse_manifest",
    "r2_bucket",
    "sha256_hex",
    "sync_dataset",
    "upload_dataset",
]
