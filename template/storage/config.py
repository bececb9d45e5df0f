"""Bucket addresses and credentials: typed, loaded from the environment or a file, never printed.

Write keys stay on the node. ``repr`` of every config object masks the secrets, and nothing
in this package logs a key id or a secret.

Environment (all optional except the bucket and the write keys; a config file may give the rest):

    TEMPLATE_S3_CONFIG                  path to a TOML or JSON file with the same settings
    TEMPLATE_S3_ENDPOINT_URL            e.g. http://127.0.0.1:9000 (MinIO); empty for AWS S3
    TEMPLATE_S3_R2_ACCOUNT_ID           Cloudflare account id (32 hex); derives the R2 endpoint
    TEMPLATE_S3_R2_JURISDICTION         "" (default) or "eu"
    TEMPLATE_S3_BUCKET                  bucket name
    TEMPLATE_S3_REGION                  default "auto" for R2, "us-east-1" otherwise
    TEMPLATE_S3_ADDRESSING_STYLE        path | virtual | auto (default: path, auto for AWS)
    TEMPLATE_S3_WRITE_ACCESS_KEY_ID     write key pair (stays on this machine)
    TEMPLATE_S3_WRITE_SECRET_ACCESS_KEY
    TEMPLATE_S3_READ_ACCESS_KEY_ID      read-only key pair (published in the chain commitment)
    TEMPLATE_S3_READ_SECRET_ACCESS_KEY
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

ENV_PREFIX = "TEMPLATE_S3_"
ADDRESSING_STYLES = ("path", "virtual", "auto")
_R2_ACCOUNT_RE = re.compile(r"^[0-9a-f]{32}$")


def mask(secret: str) -> str:
    """A printable stand-in for a credential: its length only, never a character of it."""
    return f"<{len(secret)} chars>" if secret else "<unset>"


@dataclass(frozen=True)
class BucketConfig:
    """Where a bucket lives and the key pair used to reach it."""

    endpoint_url: str | None  # None: AWS S3 (boto3 derives the endpoint from the region)
    bucket: str
    region: str = "us-east-1"
    addressing_style: str = "path"
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    # True for a peer's bucket decoded in production mode: the client then connects only to
    # public addresses, checked for every resolved address at connect time (netguard.py).
    public_only: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ConfigError("bucket name is empty")
        if self.addressing_style not in ADDRESSING_STYLES:
            raise ConfigError(
                f"addressing_style must be one of {ADDRESSING_STYLES}, got {self.addressing_style!r}"
            )

    def __repr__(self) -> str:
        return (
            f"BucketConfig(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, "
            f"region={self.region!r}, addressing_style={self.addressing_style!r}, "
            f"access_key_id={mask(self.access_key_id)}, "
            f"secret_access_key={mask(self.secret_access_key)})"
        )

    __str__ = __repr__

    @property
    def address(self) -> str:
        """Endpoint and bucket, safe to log."""
        return f"{self.endpoint_url or 'aws:' + self.region}/{self.bucket}"


def r2_endpoint(account_id: str, jurisdiction: str = "") -> str:
    """The S3 endpoint of a Cloudflare R2 account (jurisdiction "" or "eu")."""
    if not _R2_ACCOUNT_RE.match(account_id):
        raise ConfigError("a Cloudflare account id is 32 lowercase hex characters")
    if jurisdiction not in ("", "eu"):
        raise ConfigError(f"unsupported R2 jurisdiction {jurisdiction!r} (use '' or 'eu')")
    middle = f".{jurisdiction}" if jurisdiction else ""
    return f"https://{account_id}{middle}.r2.cloudflarestorage.com"


def r2_bucket(
    account_id: str, bucket: str, access_key_id: str, secret_access_key: str, jurisdiction: str = ""
) -> BucketConfig:
    """A Cloudflare R2 bucket, in the canonical form a commitment decodes to."""
    return BucketConfig(
        endpoint_url=r2_endpoint(account_id, jurisdiction),
        bucket=bucket,
        region="auto",
        addressing_style="path",
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )


def aws_bucket(
    region: str, bucket: str, access_key_id: str, secret_access_key: str
) -> BucketConfig:
    """An AWS S3 bucket, in the canonical form a commitment decodes to."""
    return BucketConfig(
        endpoint_url=None,
        bucket=bucket,
        region=region,
        addressing_style="auto",
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )


@dataclass(frozen=True)
class NodeStorageConfig:
    """This node's bucket: the write config it uses and the read-only config it publishes."""

    write: BucketConfig
    read: BucketConfig | None = None  # None: nothing to publish (local tests may reuse write)

    def __repr__(self) -> str:
        return f"NodeStorageConfig(write={self.write!r}, read={self.read!r})"

    __str__ = __repr__


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read storage config file {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix != ".json" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        # The decoder's message may quote the file (a secret); give only the position.
        pos = getattr(e, "lineno", "?")
        raise ConfigError(f"storage config file {path} is not valid (line {pos})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"storage config file {path} must hold a table/object")
    data = data.get("storage", data)
    if not isinstance(data, dict):
        raise ConfigError(f"[storage] in {path} must be a table")
    return data


def _flatten(data: Mapping) -> dict[str, str]:
    """File settings -> the same names as the env vars (without prefix), lower case."""
    flat: dict[str, str] = {}
    for k, v in data.items():
        if k in ("write", "read") and isinstance(v, Mapping):
            for kk, vv in v.items():
                flat[f"{k}_{kk}".lower()] = str(vv)
        elif not isinstance(v, Mapping):
            flat[str(k).lower()] = str(v)
    return flat


def load_storage_config(
    path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> NodeStorageConfig:
    """This node's bucket from a config file (``path`` or $TEMPLATE_S3_CONFIG) and the environment.

    Environment variables override the file. Raises ConfigError naming what is missing.
    """
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    settings = _flatten(_read_file(Path(path))) if path else {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG" and value != "":
            settings[name.removeprefix(ENV_PREFIX).lower()] = value

    bucket = settings.get("bucket", "")
    if not bucket:
        raise ConfigError(f"no bucket: set {ENV_PREFIX}BUCKET or 'bucket' in the config file")
    account = settings.get("r2_account_id", "")
    endpoint = settings.get("endpoint_url", "") or None
    if account:
        endpoint = r2_endpoint(account, settings.get("r2_jurisdiction", ""))
    default_region = "auto" if account else "us-east-1"
    default_style = "path" if endpoint else "auto"
    region = settings.get("region", default_region)
    style = settings.get("addressing_style", default_style)

    def pair(kind: str) -> tuple[str, str] | None:
        kid = settings.get(f"{kind}_access_key_id", "")
        secret = settings.get(f"{kind}_secret_access_key", "")
        if bool(kid) != bool(secret):
            raise ConfigError(
                f"{kind} key pair is half set: give both {ENV_PREFIX}{kind.upper()}_ACCESS_KEY_ID "
                f"and {ENV_PREFIX}{kind.upper()}_SECRET_ACCESS_KEY"
            )
        return (kid, secret) if kid else None

    write = pair("write")
    if write is None:
        raise ConfigError(
            f"no write keys: set {ENV_PREFIX}WRITE_ACCESS_KEY_ID and "
            f"{ENV_PREFIX}WRITE_SECRET_ACCESS_KEY (or [storage.write] in the config file)"
        )
    read = pair("read")

    def make(keys: tuple[str, str]) -> BucketConfig:
        return BucketConfig(endpoint, bucket, region, style, keys[0], keys[1])

    return NodeStorageConfig(write=make(write), read=make(read) if read else None)


def load_read_bucket(path: str | os.PathLike) -> BucketConfig:
    """A bucket this node only reads (the dataset bucket) from a TOML/JSON file.

    The file holds a flat ``[dataset]`` table (endpoint_url, bucket, region, addressing_style,
    access_key_id, secret_access_key) or a ``[storage]`` table with a ``[storage.read]`` pair.
    A write key is never needed to read, so none is looked for.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix != ".json" else json.loads(text)
    except OSError as e:
        raise ConfigError(f"cannot read bucket file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        pos = getattr(e, "lineno", "?")  # never quote the file: it holds a secret
        raise ConfigError(f"bucket file {path} is not valid (line {pos})") from None
    table = data.get("dataset", data.get("storage", data)) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"bucket file {path} must hold a [dataset] or [storage] table")
    flat = _flatten(table)
    kid = flat.get("access_key_id") or flat.get("read_access_key_id", "")
    secret = flat.get("secret_access_key") or flat.get("read_secret_access_key", "")
    if not flat.get("bucket"):
        raise ConfigError(f"bucket file {path} names no bucket")
    endpoint = flat.get("endpoint_url") or None
    return BucketConfig(
        endpoint,
        flat["bucket"],
        flat.get("region", "us-east-1"),
        flat.get("addressing_style", "path" if endpoint else "auto"),
        kid,
        secret,
    )
