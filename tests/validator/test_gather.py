"""Pre-evaluation checks of gather.py against a real local S3: missing, early, late, oversized,
wrong header, and a good upload passing."""

from __future__ import annotations

import time

import torch

from template.hparams import hparams_hash
from template.signing import dev_keypair
from template.storage import StorageClient, keys
from template.storage.local_server import start_local_s3
from template.training.compression import Compressor
from template.training.model import build_model
from template.training.wire import encode_upload, upload_size_cap
from template.validator.gather import MISSING, fetch_uploads
from template.validator.outcomes import RejectCode

from .harness import small_hparams


class Directory:
    def __init__(self, clients):
        self.clients = clients

    def client(self, hotkey):
        return self.clients.get(hotkey)


async def test_pre_evaluation_checks():
    hp = small_hparams()
    shapes = {n: tuple(p.shape) for n, p in build_model(hp.model).named_parameters()}
    delta = Compressor(hp.compression).compress({n: torch.randn(s) for n, s in shapes.items()})
    s3 = start_local_s3()
    client = StorageClient(s3.bucket("miners"))
    try:
        await client.create_bucket()
        ks = [dev_keypair(f"//Alice//g{i}") for i in range(5)]
        miners = [(i + 1, k.ss58_address) for i, k in enumerate(ks)]

        def upload(i, window=7, uid=None):
            return encode_upload(
                delta,
                window=window,
                uid=uid or i + 1,
                hparams_hash=hparams_hash(hp),
                config=hp.compression,
                key=ks[i],
                pages=[1],
            )

        await client.put_bytes(keys.upload_key(ks[0].ss58_address, 7), upload(0))
        await client.put_bytes(keys.upload_key(ks[1].ss58_address, 7), upload(1, window=6))
        await client.put_bytes(keys.upload_key(ks[2].ss58_address, 7), upload(2, uid=9))
        cap = upload_size_cap(shapes, hp.compression)
        await client.put_bytes(keys.upload_key(ks[3].ss58_address, 7), b"x" * (cap + 1))
        directory = Directory({k.ss58_address: client for k in ks})
        now = time.time()

        async def run(open_ts, cutoff_ts):
            got = await fetch_uploads(
                directory,
                miners,
                7,
                hp,
                shapes,
                open_ts=open_ts,
                cutoff_ts=cutoff_ts,
                skew=1.0,
                concurrency=4,
                time_budget=20,
            )
            return {c.uid: c for c in got}

        c = await run(now - 60, now + 60)
        assert c[1].ok and c[1].upload.uid == 1 and c[1].blob
        assert c[2].reason.code is RejectCode.WRONG_WINDOW and "window" in str(c[2].reason)
        assert c[3].reason.code is RejectCode.WRONG_FIELD and "uid" in str(c[3].reason)
        assert c[4].reason.code is RejectCode.OVERSIZE and c[4].blob is None
        assert c[5].reason == MISSING and c[5].reason.missing
        c = await run(now + 60, now + 120)
        assert c[1].reason.code is RejectCode.EARLY
        c = await run(now - 120, now - 60)  # not watched: LastModified decides
        assert c[1].reason.code is RejectCode.LATE
    finally:
        await client.close()
        s3.stop()
