"""The chain commitment: a bucket's address and READ-ONLY key pair in at most 128 bytes.

Byte 0 is a tag in 0x80..0xBF (a UTF-8 continuation byte, so a commitment never reads as
UTF-8 text) naming the layout; the layouts are in docs/storage.md. Strings are ASCII;
``L`` is a one-byte length.

    0x81 R2        tag | account id (16 raw) | key id (16 raw) | secret (32 raw) | bucket (rest)
    0x82 R2 (EU)   same as 0x81, endpoint in the EU jurisdiction
    0x83 AWS S3    tag | L region | key id (20 ASCII) | secret (30, base64-decoded) | bucket (rest)
    0x84 generic   tag | flags | L host[:port][/path] | L region | L key id | L secret | bucket (rest)
                   flags: bit 0 https, bit 1 virtual-hosted addressing (else path)
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from dataclasses import replace

from template.chain.types import MAX_COMMITMENT_BYTES

from .config import BucketConfig, aws_bucket, r2_bucket
from .errors import CommitmentError
from .netguard import host_is_refused

logger = logging.getLogger(__name__)

TAG_R2 = 0x81
TAG_R2_EU = 0x82
TAG_AWS = 0x83
TAG_GENERIC = 0x84
TAGS = (TAG_R2, TAG_R2_EU, TAG_AWS, TAG_GENERIC)

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3/R2 bucket naming rules
_R2_ENDPOINT_RE = re.compile(r"^https://([0-9a-f]{32})(\.eu)?\.r2\.cloudflarestorage\.com/?$")
_AWS_ENDPOINT_RE = re.compile(r"^https://s3[.-]([a-z0-9-]+)\.amazonaws\.com/?$")
_AWS_KEY_ID_RE = re.compile(r"^[A-Z0-9]{20}$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,32}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_PRINTABLE_RE = re.compile(r"^[\x21-\x7e]*$")


def _check_bucket(bucket: str) -> bytes:
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise CommitmentError(
            f"bucket name {bucket!r} is not a valid S3 bucket name (3-63 a-z0-9.-)"
        )
    return bucket.encode()


def _lp(value: str, what: str) -> bytes:
    raw = value.encode("ascii", errors="strict")
    if len(raw) > 255:
        raise CommitmentError(f"{what} is longer than 255 bytes")
    return bytes([len(raw)]) + raw


def _fit(out: bytes, kind: str) -> bytes:
    if len(out) > MAX_COMMITMENT_BYTES:
        raise CommitmentError(
            f"the {kind} commitment needs {len(out)} bytes but a chain commitment holds at most "
            f"MAX_COMMITMENT_BYTES={MAX_COMMITMENT_BYTES}",
            hint="Use a shorter bucket name (or endpoint/region/keys); see docs/storage.md",
        )
    return out


def encode_commitment(cfg: BucketConfig) -> bytes:
    """The commitment bytes for a READ-ONLY bucket config. CommitmentError if it cannot fit.

    The kind is chosen from the endpoint: ``https://<account>.r2.cloudflarestorage.com`` is R2,
    no endpoint (or ``https://s3.<region>.amazonaws.com``) is AWS S3, anything else is generic.
    """
    bucket = _check_bucket(cfg.bucket)
    kid, secret = cfg.access_key_id, cfg.secret_access_key
    if not kid or not secret:
        raise CommitmentError("the bucket config has no key pair to publish")
    endpoint = cfg.endpoint_url or ""
    r2 = _R2_ENDPOINT_RE.match(endpoint)
    aws = _AWS_ENDPOINT_RE.match(endpoint)
    if r2:
        if not _HEX32.match(kid) or not _HEX64.match(secret):
            raise CommitmentError(
                "an R2 key id is 32 lowercase hex characters and its secret 64; "
                "copy them from the R2 API token page"
            )
        tag = TAG_R2_EU if r2.group(2) else TAG_R2
        body = bytes.fromhex(r2.group(1)) + bytes.fromhex(kid) + bytes.fromhex(secret)
        return _fit(bytes([tag]) + body + bucket, "R2")
    if not endpoint or aws:
        region = aws.group(1) if aws else cfg.region
        if not _REGION_RE.match(region):
            raise CommitmentError(f"AWS region {region!r} is not valid")
        if not _AWS_KEY_ID_RE.match(kid):
            raise CommitmentError("an AWS access key id is 20 characters A-Z0-9")
        try:
            raw_secret = base64.b64decode(secret, validate=True)
        except binascii.Error:
            raw_secret = b""
        if len(secret) != 40 or len(raw_secret) != 30:
            raise CommitmentError("an AWS secret access key is 40 base64 characters")
        return _fit(
            bytes([TAG_AWS]) + _lp(region, "region") + kid.encode() + raw_secret + bucket, "AWS S3"
        )
    scheme, sep, host = endpoint.partition("://")
    if not sep or scheme not in ("http", "https") or not _HOST_RE.match(host):
        raise CommitmentError(f"endpoint {endpoint!r} must look like http(s)://host[:port][/path]")
    if not _PRINTABLE_RE.match(kid + secret) or not _REGION_RE.match(cfg.region):
        raise CommitmentError("key id, secret and region must be printable ASCII without spaces")
    flags = (1 if scheme == "https" else 0) | (2 if cfg.addressing_style == "virtual" else 0)
    out = (
        bytes([TAG_GENERIC, flags])
        + _lp(host.rstrip("/"), "endpoint")
        + _lp(cfg.region, "region")
        + _lp(kid, "key id")
        + _lp(secret, "secret")
        + bucket
    )
    return _fit(out, "generic endpoint")


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CommitmentError("commitment is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def lp_ascii(self) -> str:
        return self.take(self.take(1)[0]).decode("ascii")

    def rest_ascii(self) -> str:
        out = self.data[self.pos :].decode("ascii")
        self.pos = len(self.data)
        return out


def _check_public(host: str) -> None:
    """Refuse loopback/private/link-local endpoints (a peer steering our requests inward).

    Numeric hosts are read as the OS resolver reads them (``127.1``, ``0x7f000001``, ...);
    names are checked again, for every address they resolve to, when the client connects.
    """
    name = host.split("/", 1)[0].rsplit(":", 1)[0]
    why = host_is_refused(name)
    if why:
        raise CommitmentError(f"{why}; pass allow_private=True on a local subnet")


def decode_commitment_strict(data: bytes, allow_private: bool = False) -> BucketConfig:
    """Parse commitment bytes; CommitmentError (saying why) on anything malformed.

    Generic endpoints on loopback/private/link-local IP literals or ``localhost`` are refused
    unless ``allow_private`` (the local subnet and tests).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CommitmentError(f"commitment must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise CommitmentError("commitment is empty")
    if len(data) > MAX_COMMITMENT_BYTES:
        raise CommitmentError(f"commitment is {len(data)} bytes, over {MAX_COMMITMENT_BYTES}")
    cfg = _decode(data, allow_private)
    # every peer bucket outside the local mode: its client connects to public addresses only
    return cfg if allow_private else replace(cfg, public_only=True)


def _decode(data: bytes, allow_private: bool) -> BucketConfig:
    tag, r = data[0], _Reader(data[1:])
    try:
        if tag in (TAG_R2, TAG_R2_EU):
            account, kid, secret = r.take(16).hex(), r.take(16).hex(), r.take(32).hex()
            bucket = r.rest_ascii()
            _check_bucket(bucket)
            return r2_bucket(account, bucket, kid, secret, "eu" if tag == TAG_R2_EU else "")
        if tag == TAG_AWS:
            region = r.lp_ascii()
            kid = r.take(20).decode("ascii")
            secret = base64.b64encode(r.take(30)).decode()
            bucket = r.rest_ascii()
            if not _REGION_RE.match(region) or not _AWS_KEY_ID_RE.match(kid):
                raise CommitmentError("AWS region or key id is malformed")
            _check_bucket(bucket)
            return aws_bucket(region, bucket, kid, secret)
        if tag == TAG_GENERIC:
            flags = r.take(1)[0]
            if flags & ~0b11:
                raise CommitmentError(f"unknown flags {flags:#04x} in a generic commitment")
            host, region, kid, secret = r.lp_ascii(), r.lp_ascii(), r.lp_ascii(), r.lp_ascii()
            bucket = r.rest_ascii()
            if not _HOST_RE.match(host) or not _REGION_RE.match(region):
                raise CommitmentError("endpoint or region is malformed")
            if not kid or not secret or not _PRINTABLE_RE.match(kid + secret):
                raise CommitmentError("key id or secret is malformed")
            _check_bucket(bucket)
            if not allow_private:
                _check_public(host)
            return BucketConfig(
                endpoint_url=("https://" if flags & 1 else "http://") + host,
                bucket=bucket,
                region=region,
                addressing_style="virtual" if flags & 2 else "path",
                access_key_id=kid,
                secret_access_key=secret,
            )
    except UnicodeDecodeError:
        raise CommitmentError("commitment holds non-ASCII text where ASCII is expected") from None
    raise CommitmentError(f"unknown commitment tag {tag:#04x} (a newer or foreign format)")


def decode_commitment(data: bytes, allow_private: bool = False) -> BucketConfig | None:
    """Parse commitment bytes, or None when they are not a valid bucket commitment."""
    try:
        return decode_commitment_strict(data, allow_private)
    except Exception:  # noqa: BLE001 - peer input: anything malformed means "no bucket"
        return None


def parse_commitments(
    commitments: Mapping[str, bytes], allow_private: bool = False
) -> dict[str, BucketConfig]:
    """The bucket of every hotkey whose commitment parses; one log line per one that does not.

    Pass ``allow_private=True`` on a local subnet (endpoints on 127.0.0.1).
    """
    out: dict[str, BucketConfig] = {}
    for hotkey, data in commitments.items():
        try:
            out[hotkey] = decode_commitment_strict(data, allow_private)
        except Exception as e:  # noqa: BLE001 - never let one peer's garbage stop the loop
            logger.info("ignoring commitment of %s: %s", str(hotkey)[:64], e)
    return out
