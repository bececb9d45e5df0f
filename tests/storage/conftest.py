"""Shared fixtures: one loopback S3 server (moto over real HTTP) and a fault proxy in front of it."""

from __future__ import annotations

import uuid

import pytest

from template.storage import RetryPolicy, StorageClient, TransferConfig
from template.storage.local_server import start_local_s3

from .fault_proxy import FaultProxy

# Short timeouts and back-off so fault tests finish quickly.
FAST = TransferConfig(
    connect_timeout=1.0,
    read_timeout=1.0,
    request_timeout=3.0,
    retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, jitter=True),
)


@pytest.fixture(scope="session")
def local_s3():
    with start_local_s3() as s3:
        yield s3


@pytest.fixture(scope="session")
def _proxy(local_s3):
    p = FaultProxy(local_s3.endpoint_url).start()
    yield p
    p.stop()


@pytest.fixture
def proxy(_proxy):
    _proxy.set_fault(None)
    yield _proxy
    _proxy.set_fault(None)


@pytest.fixture
def bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def client(local_s3, bucket_name):
    c = StorageClient(local_s3.bucket(bucket_name), FAST)
    await c.create_bucket()
    yield c
    await c.close()


@pytest.fixture
async def proxied(client, proxy):
    """A client for the same bucket, through the fault proxy."""
    cfg = client.cfg
    c = StorageClient(
        type(cfg)(proxy.endpoint_url, cfg.bucket, cfg.region, "path", "testing", "testing"), FAST
    )
    yield c
    await c.close()
