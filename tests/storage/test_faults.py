"""Every fault ends in a clear error or a successful retry: never a hang, never a crash."""

import os

import pytest

from template.storage import (
    AccessDenied,
    GetRequest,
    ObjectNotFound,
    ObjectTooLarge,
    RetryPolicy,
    StorageClient,
    StorageError,
    TransferConfig,
    TransferTimeout,
    TransientStorageError,
    TruncatedObject,
    gather,
)
from template.storage.client import MiB

from .fault_proxy import Fault

pytestmark = pytest.mark.timeout(60)


async def test_slow_response_times_out(client, proxied, proxy):
    await client.put_bytes("k", b"data")
    proxy.set_fault(Fault("delay", seconds=5, methods=("GET",)))
    with pytest.raises(TransferTimeout, match="after 3 attempt"):
        await proxied.get_bytes("k", 100)
    assert proxy.hits == 3


async def test_trickling_body_is_cut_by_the_request_timeout(client, proxy, local_s3):
    await client.put_bytes("k", os.urandom(4000))
    cfg = TransferConfig(
        read_timeout=2, request_timeout=0.8, chunk_size=64, retry=RetryPolicy(attempts=1)
    )
    proxy.set_fault(Fault("trickle", seconds=0.05, step=10, methods=("GET",)))
    async with StorageClient(
        local_s3.bucket(client.bucket).__class__(
            proxy.endpoint_url, client.bucket, "us-east-1", "path", "t", "t"
        ),
        cfg,
    ) as c:
        with pytest.raises(TransferTimeout):
            await c.get_bytes("k", 10_000)


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (429, "TooManyRequests")]
)
async def test_transient_errors_are_retried_then_succeed(client, proxied, proxy, status, code):
    await client.put_bytes("k", b"data")
    proxy.set_fault(Fault("status", times=2, status=status, code=code))
    assert await proxied.get_bytes("k", 100) == b"data"
    assert proxy.hits == 2


async def test_retries_exhausted_give_a_clear_error(client, proxied, proxy):
    proxy.set_fault(Fault("status", status=503, code="SlowDown"))
    with pytest.raises(TransientStorageError, match="SlowDown.*after 3 attempt") as e:
        await proxied.put_bytes("k", b"data")
    assert "retry later" in str(e.value)
    assert proxy.hits == 3


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (404, "NoSuchKey", ObjectNotFound),
        (403, "AccessDenied", AccessDenied),
        (400, "Bad", StorageError),
    ],
)
async def test_client_errors_are_not_retried(proxied, proxy, status, code, error):
    proxy.set_fault(Fault("status", status=status, code=code))
    with pytest.raises(error):
        await proxied.get_bytes("k", 100)
    assert proxy.hits == 1


async def test_truncated_body_retried_then_clear_error(client, proxied, proxy):
    data = os.urandom(50_000)
    await client.put_bytes("k", data)
    proxy.set_fault(Fault("truncate", times=1, methods=("GET",)))
    assert await proxied.get_bytes("k", 10**6) == data
    proxy.set_fault(Fault("truncate", methods=("GET",)))
    with pytest.raises(TruncatedObject):
        await proxied.get_bytes("k", 10**6)


async def test_cap_holds_without_content_length(client, proxied, proxy):
    await client.put_bytes("k", b"x" * 1000)
    proxy.set_fault(Fault("chunked", methods=("GET",), pad=1 << 20))  # no length, 1 MB more
    with pytest.raises(ObjectTooLarge, match="passed the cap"):
        await proxied.get_bytes("k", 2000)
    assert await proxied.get_bytes("k", 2_000_000) == b"x" * 1000 + b"\0" * (1 << 20)


async def test_multipart_part_retry(local_s3, proxy, bucket_name):
    cfg = TransferConfig(
        read_timeout=5,
        request_timeout=20,
        multipart_threshold=5 * MiB,
        part_size=5 * MiB,
        retry=RetryPolicy(3, 0.01, 0.05),
    )
    async with StorageClient(local_s3.bucket(bucket_name), cfg) as direct:
        await direct.create_bucket()
        via = local_s3.bucket(bucket_name).__class__(
            proxy.endpoint_url, bucket_name, "us-east-1", "path", "t", "t"
        )
        async with StorageClient(via, cfg) as c:
            data = os.urandom(10 * MiB + 1)
            proxy.set_fault(Fault("status", times=2, methods=("PUT",), status=503))
            await c.put_bytes("mp", data)
        assert await direct.get_bytes("mp", len(data)) == data


async def test_gather_mixed_peers(local_s3, proxy):
    ok, slow_peers = [], []
    fast = TransferConfig(read_timeout=5, request_timeout=5, retry=RetryPolicy(3, 0.01, 0.05))
    clients = []
    for i in range(6):
        c = StorageClient(local_s3.bucket(f"gather-peer-{i}-{os.getpid()}"), fast)
        await c.create_bucket()
        clients.append(c)
    for i, c in enumerate(clients[:4]):
        await c.put_bytes("u", bytes([i]) * 100)
    # peer 4 has nothing; peer 5 answers slowly through the proxy, past the budget
    await clients[5].put_bytes("u", b"slow")
    slow = StorageClient(
        local_s3.bucket(clients[5].bucket).__class__(
            proxy.endpoint_url, clients[5].bucket, "us-east-1", "path", "t", "t"
        ),
        fast,
    )
    proxy.set_fault(Fault("delay", seconds=2.5, methods=("GET",)))
    reqs = [GetRequest(c, "u", 1000) for c in clients[:4]]
    reqs[2] = GetRequest(clients[2], "u", 10)  # too large for its cap
    reqs += [GetRequest(clients[4], "u", 1000), GetRequest(slow, "u", 1000)]
    results = await gather(reqs, concurrency=3, time_budget=1.5)
    assert results[0] == bytes([0]) * 100 and results[1] == bytes([1]) * 100
    assert isinstance(results[2], ObjectTooLarge)
    assert results[3] == bytes([3]) * 100
    assert isinstance(results[4], ObjectNotFound)
    assert isinstance(results[5], TransferTimeout)
    assert await gather([]) == []
    del ok, slow_peers
    for c in [*clients, slow]:
        await c.close()
