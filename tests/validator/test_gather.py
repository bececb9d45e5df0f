"""Pre-evaluation checks of gather.py against a real local S3: missing, early, late, oversized,
wrong header, and a good upload passing."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import torch

from template.hparams import hparams_hash
from template.signing import dev_keypair
from template.storage import StorageClient, keys
from template.storage.local_server import start_local_s3
from template.training.compression import Compressor
from template.training.model import build_model
from template.training.wire import encode_upload, upload_size_cap
from template.validator.copies import CopyRules, find_clusters, make_print
from template.validator.gather import MISSING, fetch_uploads
from template.validator.outcomes import RejectCode
from template.validator.replay import content_digest
from template.validator.sketch import flatten
from template.validator.watch import WindowWatch, poll_round

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


class BackdatingClient:
    """A copier's storage: reports a LastModified far in the past for every object."""

    def __init__(self, inner, when: float):
        self.inner, self.when = inner, when

    async def head(self, key, deadline=None):
        info = await self.inner.head(key, deadline=deadline)
        return dataclasses.replace(info, last_modified=datetime.fromtimestamp(self.when, UTC))

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_watched_window_orders_by_the_validators_clock_not_last_modified():
    """The original is seen first by the validator's own polling; the copier's storage
    back-dates its LastModified; the copy is the one found provably later, the original
    stands; content appearing only after the cut-off round is late."""
    hp = small_hparams()
    shapes = {n: tuple(p.shape) for n, p in build_model(hp.model).named_parameters()}
    delta = Compressor(hp.compression).compress({n: torch.randn(s) for n, s in shapes.items()})
    s3 = start_local_s3()
    client = StorageClient(s3.bucket("watch"))
    try:
        await client.create_bucket()
        ks = [dev_keypair(f"//Alice//w{i}") for i in range(3)]
        miners = [(i + 1, k.ss58_address) for i, k in enumerate(ks)]
        now = time.time()
        directory = Directory(
            {
                ks[0].ss58_address: client,
                ks[1].ss58_address: BackdatingClient(client, now - 30),
                ks[2].ss58_address: client,
            }
        )

        def upload(i):
            return encode_upload(
                delta,
                window=7,
                uid=i + 1,
                hparams_hash=hparams_hash(hp),
                config=hp.compression,
                key=ks[i],
                pages=[1],
            )

        hotkeys = [k.ss58_address for k in ks]
        ww = WindowWatch()
        await poll_round(ww, directory, hotkeys, 7, concurrency=4)  # nothing there yet
        await client.put_bytes(keys.upload_key(ks[0].ss58_address, 7), upload(0))
        await poll_round(ww, directory, hotkeys, 7, concurrency=4)  # the original
        await poll_round(ww, directory, hotkeys, 7, concurrency=4)  # the copier still absent
        await client.put_bytes(keys.upload_key(ks[1].ss58_address, 7), upload(1))  # the copy
        await poll_round(ww, directory, hotkeys, 7, concurrency=4)
        ww.cutoff_seen = time.time()
        await poll_round(ww, directory, hotkeys, 7, concurrency=4)
        ww.closed = True
        await client.put_bytes(keys.upload_key(ks[2].ss58_address, 7), upload(2))  # too late

        got = await fetch_uploads(
            directory,
            miners,
            7,
            hp,
            shapes,
            open_ts=now - 60,
            cutoff_ts=now + 60,
            skew=1.0,
            concurrency=4,
            time_budget=20,
            watch=ww,
        )
        c = {x.uid: x for x in got}
        assert c[1].ok and c[2].ok
        assert c[2].last_modified < c[1].last_modified  # the copier's clock claims priority
        assert c[1].first_seen < c[2].sighting.absent_before  # the validator's clock says no
        assert c[3].reason.code is RejectCode.LATE
        rules = CopyRules()
        prints = [
            make_print(x.uid, content_digest(x.upload), flatten(x.upload), rules, 1)
            for x in (c[1], c[2])
        ]
        sightings = {x.uid: x.sighting for x in (c[1], c[2])}
        (cluster,) = find_clusters(prints, sightings, rules)
        assert cluster.uids == (1, 2) and set(cluster.rejections()) == {2}
    finally:
        await client.close()
        s3.stop()
