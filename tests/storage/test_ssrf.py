"""A peer's commitment never steers a production node's requests to a local address.

Covers every numeric host form the OS resolver accepts, names that resolve to private
addresses (including one public + one private answer, as a rebinding DNS server gives), and a
real listener on 127.0.0.1 that must see no connection from a client built from a hostile
commitment unless the node runs in the explicit local mode.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from template.storage import (
    BucketConfig,
    CommitmentError,
    ForbiddenAddress,
    StorageClient,
    TransferConfig,
    decode_commitment_strict,
    encode_commitment,
)
from template.storage.netguard import host_is_refused, parse_inet_aton, set_resolver
from template.storage.retry import RetryPolicy

ONE_TRY = TransferConfig(
    connect_timeout=1.0, read_timeout=1.0, request_timeout=3.0, retry=RetryPolicy(attempts=2)
)

LOOPBACK_FORMS = ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "127.0.0.1"]
METADATA_FORMS = ["2852039166", "0xa9fea9fe", "169.254.43518", "169.254.169.254"]
OTHER_PRIVATE = ["0", "10.1", "0.0.0.0", "192.168.1.1", "100.64.0.1", "localhost", "a.localhost"]


def commitment_for(host: str, port: int = 9000) -> bytes:
    cfg = BucketConfig(f"http://{host}:{port}", "grads", "us-east-1", "path", "key", "secret")
    return encode_commitment(cfg)


@pytest.mark.parametrize("host", LOOPBACK_FORMS + METADATA_FORMS + OTHER_PRIVATE)
def test_numeric_and_local_hosts_refused_in_production(host):
    data = commitment_for(host)
    with pytest.raises(CommitmentError, match="allow_private"):
        decode_commitment_strict(data)
    assert decode_commitment_strict(data, allow_private=True).endpoint_url.startswith("http://")


def test_inet_aton_forms_read_as_the_resolver_reads_them():
    for host in LOOPBACK_FORMS:
        assert str(parse_inet_aton(host)) == "127.0.0.1"
    for host in METADATA_FORMS:
        assert str(parse_inet_aton(host)) == "169.254.169.254"
    for host in LOOPBACK_FORMS[:-1]:  # the platform agrees with our reading
        assert socket.inet_ntoa(socket.inet_aton(host)) == "127.0.0.1"
    assert parse_inet_aton("example.org") is None and parse_inet_aton("1.2.3.4.5") is None
    assert parse_inet_aton("256.1") is None and parse_inet_aton("1.2.3.256") is None


@pytest.mark.parametrize(
    "host",
    [
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "[::1]",
        "fe80::1",
        "fc00::1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
        "::127.0.0.1",
        "::",
    ],
)
def test_ipv6_local_forms_refused(host):
    assert host_is_refused(host)


def test_public_hosts_pass():
    for host in ("8.8.8.8", "2606:4700::1111", "minio.example.org", "s3.amazonaws.com"):
        assert host_is_refused(host) is None


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()  # the client sees a dropped connection

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def resolver():
    answers: dict[str, list[str]] = {}
    set_resolver(lambda host, port: answers.get(host, []))
    yield answers
    set_resolver(None)


async def fetch(cfg: BucketConfig):
    async with StorageClient(cfg, ONE_TRY) as client:
        return await client.get_bytes("k", 100)


def hostile(name: str, port: int) -> BucketConfig:
    data = commitment_for(name, port)
    return decode_commitment_strict(data)


@pytest.mark.parametrize(
    "answers",
    [["127.0.0.1"], ["::ffff:127.0.0.1"], ["93.184.216.34", "127.0.0.1"], ["169.254.169.254"]],
)
def test_client_from_hostile_commitment_never_connects_locally(listener, resolver, answers):
    resolver["bucket.attacker.example"] = answers
    cfg = hostile("bucket.attacker.example", listener.port)
    assert cfg.public_only and cfg.endpoint_url.endswith(f":{listener.port}")
    with pytest.raises(ForbiddenAddress, match="not a public address"):
        asyncio.run(fetch(cfg))
    assert listener.accepted == 0


def test_unresolvable_name_is_refused_not_retried(listener, resolver):
    cfg = hostile("nowhere.attacker.example", listener.port)
    with pytest.raises(ForbiddenAddress, match="resolves to nothing"):
        asyncio.run(fetch(cfg))
    assert listener.accepted == 0


def test_local_mode_does_connect(listener):
    """The control: the same loopback endpoint in the explicit local mode reaches the listener."""
    data = commitment_for("127.0.0.1", listener.port)
    cfg = decode_commitment_strict(data, allow_private=True)
    assert not cfg.public_only
    with pytest.raises(Exception):  # noqa: B017 - the listener drops every connection
        asyncio.run(fetch(cfg))
    assert listener.accepted >= 1


def test_guard_connects_to_the_checked_address(listener, resolver, monkeypatch):
    """The connection goes to the address that was checked, never to a second lookup."""
    import template.storage.netguard as ng

    resolver["rebind.attacker.example"] = ["127.0.0.1"]
    monkeypatch.setattr(ng, "is_public", lambda ip: True)  # pretend the check passed
    cfg = hostile("rebind.attacker.example", listener.port)
    with pytest.raises(Exception):  # noqa: B017 - dropped by the listener
        asyncio.run(fetch(cfg))
    assert listener.accepted >= 1  # reached via the checked answer, not via the OS resolver


class Silent(Listener):
    """A listener that accepts and never answers (a hung or SIGSTOPped endpoint)."""

    def _run(self):
        self.held = []
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.held.append(conn)

    def close(self):
        super().close()
        for c in self.held:
            c.close()


def test_closing_a_client_ends_a_read_stuck_on_a_hung_endpoint():
    """Without this a stopping node waits out the read timeout in its exit (25 s measured)."""
    import time

    from template.storage.config import BucketConfig

    lst = Silent()
    slow = TransferConfig(
        connect_timeout=2.0, read_timeout=30.0, request_timeout=60.0, retry=RetryPolicy()
    )
    cfg = BucketConfig(f"http://127.0.0.1:{lst.port}", "b", "us-east-1", "path", "k", "s")

    async def stuck_then_close():
        client = StorageClient(cfg, slow)
        task = asyncio.ensure_future(client.get_bytes("k", 100))
        while lst.accepted == 0:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the worker thread is now blocked reading the response
        task.cancel()
        t0 = time.monotonic()
        await client.close()
        for t in list(client._executor._threads):
            t.join(10)
        return time.monotonic() - t0, [t for t in client._executor._threads if t.is_alive()]

    try:
        seconds, alive = asyncio.run(stuck_then_close())
    finally:
        lst.close()
    assert not alive and seconds < 10  # the read timeout is 30 s
