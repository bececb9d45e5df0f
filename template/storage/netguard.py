"""Which network addresses a peer's bucket may point us at, checked when the host is parsed
and again, for every resolved address, when a connection is opened.

A commitment names the endpoint of a peer's bucket, so a hostile peer could steer our requests
to our own loopback services or to a cloud metadata endpoint. Two checks stop that:

- ``host_is_refused`` parses the host as the OS resolver would (``inet_aton`` accepts
  ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``0x7f.1`` and ``0``) and refuses
  numeric hosts that are not public, and any numeric host not written in canonical form.
- ``guard_client`` makes a boto3 client resolve each name itself, check EVERY address the
  resolver returns, and connect to one of those checked addresses (so a DNS answer that changes
  between the check and the connect, DNS rebinding, cannot slip through).

Private, loopback and link-local addresses are allowed only in the explicit local mode
(``--allow-private`` on a local subnet), where these checks are not installed at all.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)

from .errors import ForbiddenAddress

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _aton_part(text: str) -> int | None:
    """One part of a BSD ``inet_aton`` address: decimal, octal (leading 0) or hex (0x)."""
    if text[:2].lower() == "0x":
        digits, base = text[2:], 16
        if digits == "":
            return 0  # glibc reads a bare "0x" as zero
    elif len(text) > 1 and text[0] == "0":
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or not digits.isascii() or not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address the OS resolver reads ``host`` as, or None when it is a name.

    Follows ``inet_aton``: 1 to 4 parts; the last part fills the remaining bytes
    (``127.1`` is 127.0.0.1, ``169.254.43518`` is 169.254.169.254, ``2130706433`` is 127.0.0.1).
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    values = [_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << (8 * (4 - len(head))) | last
    return ipaddress.IPv4Address(number)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (v4-mapped, 6to4, NAT64, v4-compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address (and so is any IPv4 it embeds)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_v4(ip)
        if inner is not None and (inner.packed == bytes(4) or not is_public(inner)):
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified


def host_is_refused(host: str) -> str | None:
    """Why a peer's endpoint host may not be used in production, or None when it may.

    Names are only checked here for being local (``localhost``); their addresses are checked
    at connect time by ``guard_client``.
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    bare = name.rstrip(".")
    if bare in ("localhost", "") or bare.endswith(".localhost"):
        return f"endpoint host {host!r} is local"
    v4 = parse_inet_aton(bare)
    if v4 is not None:
        if bare != str(v4):
            return f"endpoint host {host!r} is a numeric address in a non-canonical form ({v4})"
        return None if is_public(v4) else f"endpoint {v4} is not a public address"
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return None  # a DNS name: checked when it is resolved
    return None if is_public(ip) else f"endpoint {ip} is not a public address"


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address the OS resolver gives for ``host`` (TCP), in its order, without repeats."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    out: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in out:
            out.append(sockaddr[0])
    return out


_resolver: Resolver = resolve  # tests swap it to stand for a rebinding DNS server


def set_resolver(fn: Resolver | None) -> None:
    """Replace the resolver the guard uses (tests); None restores the OS resolver."""
    global _resolver
    _resolver = fn or resolve


def checked_addresses(host: str, port: int) -> list[str]:
    """The resolved addresses of ``host``; ForbiddenAddress if ANY of them is not public."""
    why = host_is_refused(host)
    if why:
        raise ForbiddenAddress(why)
    try:
        addresses = _resolver(host.strip("[]"), port)
    except OSError as e:
        raise ForbiddenAddress(f"endpoint host {host!r} does not resolve ({e})") from None
    if not addresses:
        raise ForbiddenAddress(f"endpoint host {host!r} resolves to nothing")
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(ip) or "%" in text:
            raise ForbiddenAddress(f"endpoint host {host!r} resolves to {ip}, not a public address")
    return addresses


class _GuardedConnect:
    """Mixin for urllib3 connections: connect only to checked, public, resolved addresses."""

    def _new_conn(self):  # type: ignore[no-untyped-def]
        host = self._dns_host  # type: ignore[attr-defined]
        addresses = checked_addresses(host, self.port)  # type: ignore[attr-defined]
        last: Exception | None = None
        for address in addresses:
            self._dns_host = address  # connect to the checked address, not a fresh lookup
            try:
                return super()._new_conn()  # type: ignore[misc]
            except Exception as e:  # noqa: BLE001 - try the next address, then re-raise
                last = e
            finally:
                self._dns_host = host  # TLS (SNI, certificate) and Host still use the name
        assert last is not None
        raise last


class GuardedHTTPConnection(_GuardedConnect, AWSHTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnect, AWSHTTPSConnection):
    pass


class GuardedHTTPConnectionPool(AWSHTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(AWSHTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


_GUARDED_POOLS = {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


def set_pool_classes(s3, pools: dict) -> None:  # type: ignore[no-untyped-def]
    """Make a boto3 client open its connections through ``pools`` ({"http": ..., "https": ...}).

    Raises RuntimeError when botocore's HTTP session does not look as expected (a botocore
    upgrade): failing loudly beats connecting unchecked.
    """
    session = getattr(getattr(s3, "_endpoint", None), "http_session", None)
    manager = getattr(session, "_manager", None)
    if manager is None or not hasattr(session, "_pool_classes_by_scheme"):
        raise RuntimeError("botocore's HTTP session changed; cannot install the address guard")
    pools = dict(pools)
    session._pool_classes_by_scheme = pools
    manager.pool_classes_by_scheme = pools
    for proxy_manager in getattr(session, "_proxy_managers", {}).values():
        proxy_manager.pool_classes_by_scheme = pools


def guard_client(s3) -> None:  # type: ignore[no-untyped-def]
    """Make a boto3 client check every address it connects to (see the module docstring)."""
    set_pool_classes(s3, _GUARDED_POOLS)
