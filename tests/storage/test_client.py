import os
import time

import pytest

from template.storage import (
    BucketNotFound,
    ChecksumMismatch,
    ObjectNotFound,
    ObjectTooLarge,
    StorageClient,
    TransferConfig,
    sha256_hex,
)
from template.storage.client import MiB

from .conftest import FAST

MULTIPART = TransferConfig(
    connect_timeout=2,
    read_timeout=5,
    request_timeout=20,
    multipart_threshold=5 * MiB,
    part_size=5 * MiB,
)


async def test_small_round_trip_and_metadata(client):
    data = os.urandom(25_000)
    etag = await client.put_bytes("v1/x/obj", data)
    assert etag
    assert await client.get_bytes("v1/x/obj", 25_000, sha256_hex(data)) == data
    info = await client.head("v1/x/obj")
    assert info.size == 25_000 and info.etag == etag
    assert info.last_modified.tzinfo is not None
    assert abs(info.last_modified_unix - time.time()) < 120
    fetched = await client.get("v1/x/obj", 10**6)
    assert fetched.data == data and fetched.info.size == 25_000
    assert [o.key for o in await client.list("v1/x/")] == ["v1/x/obj"]
    assert await client.exists("v1/x/obj")
    assert await client.delete(["v1/x/obj"]) == 1
    assert not await client.exists("v1/x/obj")


async def test_empty_object(client):
    await client.put_bytes("empty", b"")
    assert await client.get_bytes("empty", 0) == b""


async def test_multipart_round_trip(local_s3, bucket_name, tmp_path):
    async with StorageClient(local_s3.bucket(bucket_name), MULTIPART) as c:
        await c.create_bucket()
        data = os.urandom(11 * MiB + 123)  # three parts
        await c.put_bytes("big", data)
        assert await c.get_bytes("big", len(data), sha256_hex(data)) == data
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        await c.put_file("big-file", src)
        info = await c.download_file("big-file", tmp_path / "out.bin", len(data), sha256_hex(data))
        assert info.size == len(data) and (tmp_path / "out.bin").read_bytes() == data
        assert "-3" in (await c.head("big-file")).etag  # a 3-part multipart ETag


async def test_size_cap_from_content_length(client):
    await client.put_bytes("big", b"x" * 1000)
    with pytest.raises(ObjectTooLarge, match="cap of 999"):
        await client.get_bytes("big", 999)


async def test_checksum_mismatch(client, tmp_path):
    await client.put_bytes("obj", b"payload")
    with pytest.raises(ChecksumMismatch):
        await client.get_bytes("obj", 100, sha256_hex(b"other"))
    with pytest.raises(ChecksumMismatch):
        await client.download_file("obj", tmp_path / "o", 100, sha256_hex(b"other"))
    assert not (tmp_path / "o").exists() and not list(tmp_path.iterdir())


async def test_missing_object_and_bucket(client, local_s3):
    with pytest.raises(ObjectNotFound):
        await client.get_bytes("nope", 100)
    with pytest.raises(ObjectNotFound):
        await client.head("nope")
    async with StorageClient(local_s3.bucket("no-such-bucket-here"), FAST) as c:
        with pytest.raises(BucketNotFound):
            await c.get_bytes("x", 10)


async def test_list_is_bounded(client):
    for i in range(5):
        await client.put_bytes(f"p/{i}", b"x")
    assert len(await client.list("p/", limit=3)) == 3
