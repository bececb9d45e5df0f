"""Credentials: a read-only key cannot write, wrong keys are refused, write keys never leak."""

import json
import logging

import boto3
import pytest

from template.storage import (
    AccessDenied,
    BucketConfig,
    NodeStorageConfig,
    StorageClient,
    encode_commitment,
)
from template.storage.local_server import start_local_s3_process

from .conftest import FAST
from .fault_proxy import Fault

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def auth_s3():
    """A separate moto process (auth is a process-wide switch) with IAM users, then auth on."""
    s3 = start_local_s3_process()
    iam = boto3.client(
        "iam",
        endpoint_url=s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )

    def user(name: str, actions: list[str]) -> tuple[str, str]:
        iam.create_user(UserName=name)
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    keys = {
        "write": user("writer", ["s3:*"]),
        "read": user("reader", ["s3:GetObject", "s3:ListBucket"]),
    }
    s3.enforce_auth(0)
    yield s3, keys
    s3.stop()


async def test_read_only_key_and_wrong_credentials(auth_s3):
    s3, keys = auth_s3
    async with StorageClient(s3.bucket("auth-bucket", *keys["write"]), FAST) as w:
        await w.create_bucket()
        await w.put_bytes("obj", b"data")
    read_cfg = s3.bucket("auth-bucket", *keys["read"])
    async with StorageClient(read_cfg, FAST) as r:
        assert await r.get_bytes("obj", 100) == b"data"
        with pytest.raises(AccessDenied):
            await r.put_bytes("obj2", b"x")
        with pytest.raises(AccessDenied):
            await r.delete(["obj"])
    # the read key travels through a commitment and still works
    from template.storage import decode_commitment

    decoded = decode_commitment(encode_commitment(read_cfg), allow_private=True)
    async with StorageClient(decoded, FAST) as r2:
        assert await r2.get_bytes("obj", 100) == b"data"
    bad = [
        s3.bucket("auth-bucket", keys["write"][0], "x" * 40),  # wrong secret
        s3.bucket("auth-bucket", "AKIAIOSFODNN7EXAMPLE", keys["write"][1]),  # unknown key id
    ]
    for cfg in bad:
        async with StorageClient(cfg, FAST) as c:
            with pytest.raises(AccessDenied, match="Check the access key"):
                await c.get_bytes("obj", 100)


WRITE_ID, WRITE_SECRET = "WRITEKEYIDLEAKCHECK1", "writeSecretThatMustNeverAppearInLogs12345"


async def test_write_keys_never_logged(local_s3, proxy, bucket_name, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = BucketConfig(
        local_s3.endpoint_url, bucket_name, "us-east-1", "path", WRITE_ID, WRITE_SECRET
    )
    via_proxy = BucketConfig(
        proxy.endpoint_url, bucket_name, "us-east-1", "path", WRITE_ID, WRITE_SECRET
    )
    texts = [repr(cfg), str(cfg), repr(NodeStorageConfig(cfg, cfg))]
    async with StorageClient(cfg, FAST) as c, StorageClient(via_proxy, FAST) as p:
        texts.append(repr(c))
        await c.create_bucket()
        await c.put_bytes("k", b"data" * 100)
        await c.get_bytes("k", 1000)
        await c.head("k")
        await c.list("")
        for fault in (
            Fault("status", status=503),
            Fault("status", status=403, code="AccessDenied"),
            Fault("truncate", methods=("GET",)),
        ):
            proxy.set_fault(fault)
            with pytest.raises(Exception) as e:  # noqa: B017 - any error; we check its text
                await p.get_bytes("k", 1000)
            texts.append(str(e.value))
        proxy.set_fault(None)
        with pytest.raises(Exception) as e:  # noqa: B017
            await c.get_bytes("missing", 10)
        texts.append(str(e.value))
        await c.delete(["k"])
    assert caplog.records, "expected some DEBUG/INFO logging to check"
    for text in [caplog.text, *texts]:
        assert WRITE_ID not in text and WRITE_SECRET not in text
