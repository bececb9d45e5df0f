"""The local subnet's S3 keeps its buckets and objects across a kill -9 and restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from template.storage import ObjectNotFound, StorageClient
from template.storage.local_server import LocalS3
from template.storage.persistent_s3 import Journal, compact

from .conftest import FAST


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, journal) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "template.storage.persistent_s3", "--port", str(port)]
    proc = subprocess.Popen(
        cmd + ["--journal", str(journal)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("persistent S3 did not come up")


@pytest.fixture
def server(tmp_path):
    port, journal = free_port(), tmp_path / "s3-journal.jsonl"
    procs = [start(port, journal)]

    def restart_after_kill9() -> None:
        os.kill(procs[-1].pid, signal.SIGKILL)
        procs[-1].wait()
        procs.append(start(port, journal))

    yield LocalS3(f"http://127.0.0.1:{port}"), restart_after_kill9, journal
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_buckets_and_objects_survive_kill9(server):
    s3, restart, journal = server

    async def write() -> None:
        async with StorageClient(s3.bucket("grads-a"), FAST) as c:
            await c.create_bucket()
            await c.put_bytes("w/1", b"one" * 1000)
            await c.put_bytes("w/2", bytes(range(256)) * 100)
            await c.put_bytes("w/3", b"gone")
            await c.delete(["w/3"])
            await c.put_bytes("w/1", b"newer")  # the last write wins after replay too

    async def read() -> tuple[bytes, bytes, list[str]]:
        async with StorageClient(s3.bucket("grads-a"), FAST) as c:
            with pytest.raises(ObjectNotFound):
                await c.get_bytes("w/3", 100)
            keys = [o.key for o in await c.list("w/")]
            return await c.get_bytes("w/1", 100), await c.get_bytes("w/2", 1 << 20), keys

    asyncio.run(write())
    before = asyncio.run(read())
    restart()
    assert asyncio.run(read()) == before == (b"newer", bytes(range(256)) * 100, ["w/1", "w/2"])
    # compacted at the restart: the overwritten w/1 and the deleted w/3 are gone from it
    paths = [(e["method"], e["path"]) for e in Journal(journal).entries()]
    assert paths == [
        ("PUT", "/grads-a"),
        ("PUT", "/grads-a/w/2"),
        ("POST", "/grads-a"),
        ("PUT", "/grads-a/w/1"),
    ]
    assert oct(os.stat(journal).st_mode & 0o777) == "0o600"


def test_a_torn_last_line_is_skipped(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append({"method": "PUT", "path": "/b"})
    with open(j.path, "ab") as f:
        f.write(b'{"method": "PUT", "pa')
    assert j.entries() == [{"method": "PUT", "path": "/b"}]


def test_compaction_drops_only_what_later_entries_undo():
    def put(path, query=""):
        return {"method": "PUT", "path": path, "query": query, "body": ""}

    entries = [
        put("/b"),  # the bucket: kept
        put("/b/x"),  # overwritten below: dropped
        put("/b/y"),  # deleted by DELETE: dropped with the DELETE
        {"method": "DELETE", "path": "/b/y", "query": "", "body": ""},
        put("/b/x"),  # kept
        put("/b/x", "tagging"),  # not an object write: kept
        put("/b/z"),  # deleted again, then written again: only the last PUT stays
        {"method": "DELETE", "path": "/b/z", "query": "", "body": ""},
        put("/b/z"),
    ]
    assert compact(entries) == [entries[0], entries[4], entries[5], entries[8]]
