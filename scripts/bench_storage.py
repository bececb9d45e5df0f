"""Storage throughput against a loopback S3 server (moto in a child process).

    python scripts/bench_storage.py --json

Prints one JSON object: upload/download MB/s for one large object (multipart upload) and the
wall time of gathering 16 peers' tiny-preset uploads from 16 buckets with 16 clients.
Loopback moto measures this layer's overhead (threads, retries, hashing, boto3), not a real
network or R2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.storage import GetRequest, StorageClient, TransferConfig, gather, sha256_hex  # noqa: E402
from template.storage.client import MiB  # noqa: E402
from template.storage.local_server import start_local_s3_process  # noqa: E402


async def bench(endpoint: str, size_mb: int, peers: int, peer_bytes: int, repeats: int, s3) -> dict:
    transfer = TransferConfig()
    data = os.urandom(size_mb * MiB)
    digest = sha256_hex(data)
    async with StorageClient(s3.bucket("bench-large"), transfer) as c:
        await c.create_bucket()
        up, down = [], []
        for i in range(repeats):
            t = time.perf_counter()
            await c.put_bytes(f"large/{i}", data)
            up.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = await c.get_bytes(f"large/{i}", len(data), digest)
            down.append(time.perf_counter() - t)
            assert got == data

    clients = [StorageClient(s3.bucket(f"bench-peer-{i:02d}"), transfer) for i in range(peers)]
    payloads = [os.urandom(peer_bytes) for _ in range(peers)]
    for c, p in zip(clients, payloads, strict=True):
        await c.create_bucket()
        await c.put_bytes("upload", p)
    reqs = [
        GetRequest(c, "upload", peer_bytes, sha256_hex(p))
        for c, p in zip(clients, payloads, strict=True)
    ]
    times = []
    for _ in range(repeats + 1):  # the first run is a warm-up, reported apart
        t = time.perf_counter()
        results = await gather(reqs, concurrency=peers, time_budget=30)
        times.append(time.perf_counter() - t)
        assert results == payloads, [type(r).__name__ for r in results]
    for c in clients:
        await c.close()

    mb = size_mb * MiB / 1e6
    return {
        "object_bytes": size_mb * MiB,
        "part_size_bytes": transfer.part_size,
        "multipart_threshold_bytes": transfer.multipart_threshold,
        "upload_mb_per_s": round(mb / statistics.median(up), 1),
        "download_mb_per_s": round(mb / statistics.median(down), 1),
        "gather_peers": peers,
        "gather_bytes_per_peer": peer_bytes,
        "gather_seconds": round(statistics.median(times[1:]), 4),
        "gather_seconds_cold": round(times[0], 4),
        "repeats": repeats,
        "server": "moto (child process) on 127.0.0.1",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--size-mb", type=int, default=64, help="large object size in MiB")
    ap.add_argument("--peers", type=int, default=16)
    ap.add_argument("--peer-bytes", type=int, default=25_000, help="tiny preset upload ~25 KB")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with start_local_s3_process() as s3:
        out = asyncio.run(
            bench(s3.endpoint_url, args.size_mb, args.peers, args.peer_bytes, args.repeats, s3)
        )
    if not args.json:
        print("storage benchmark (loopback moto):", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
