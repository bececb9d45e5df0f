"""The start-up steps both neurons share (template/node/startup.py), on a fake chain."""

from __future__ import annotations

import asyncio

import pytest

from template.chain.errors import RateLimitedError
from template.node import startup
from template.node.errors import StartupError
from template.storage import BucketConfig, NodeStorageConfig, encode_commitment

BUCKET = BucketConfig("https://s3.example.com", "seed-bucket", "us-east-1", "path", "id", "secret")


class FakeChain:
    hotkey, netuid = "5Fake", 7

    def __init__(self, refusals: int, uid: int | None = 3):
        self.refusals, self.uid, self.commits, self.held = refusals, uid, 0, {}

    async def commitments(self) -> dict[str, bytes]:
        return dict(self.held)

    async def commit(self, data: bytes) -> None:
        self.commits += 1
        if self.commits <= self.refusals:
            raise RateLimitedError("commitment rate limit")
        self.held[self.hotkey] = data

    async def uid_of(self, hotkey: str) -> int | None:
        return self.uid


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    real = asyncio.sleep
    monkeypatch.setattr(startup.asyncio, "sleep", lambda s: real(0))


def test_commitment_is_retried_through_rate_limits_and_published_once():
    chain = FakeChain(refusals=2)
    assert asyncio.run(startup.publish_commitment(chain, BUCKET)) is True
    assert chain.commits == 3 and chain.held[chain.hotkey] == encode_commitment(BUCKET)
    assert asyncio.run(startup.publish_commitment(chain, BUCKET)) is False  # unchanged: no call
    assert chain.commits == 3


def test_a_commitment_rate_limited_every_time_names_the_fix():
    chain = FakeChain(refusals=99)
    with pytest.raises(StartupError, match="rate-limited repeatedly"):
        asyncio.run(startup.publish_commitment(chain, BUCKET, attempts=3))
    assert chain.commits == 3


def test_registration_error_names_the_btcli_command():
    with pytest.raises(StartupError, match="btcli subnets register --netuid 7"):
        asyncio.run(startup.check_registered(FakeChain(0, uid=None), "5Fake", "w", "h"))
    assert asyncio.run(startup.check_registered(FakeChain(0), "5Fake")) == 3


def test_only_read_keys_are_published_unless_private():
    write_only = NodeStorageConfig(write=BUCKET)
    with pytest.raises(StartupError, match="read-only"):
        startup.published_bucket(write_only, allow_private=False)
    assert startup.published_bucket(write_only, allow_private=True) == BUCKET
    read = BucketConfig(BUCKET.endpoint_url, BUCKET.bucket, "us-east-1", "path", "r", "rs")
    both = NodeStorageConfig(write=BUCKET, read=read)
    assert startup.published_bucket(both, allow_private=False) == read
