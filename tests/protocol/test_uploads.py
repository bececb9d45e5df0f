"""Every node's read of an upload (protocol/uploads.py): sealed bytes plus the revealed key."""

from __future__ import annotations

from template.protocol.uploads import fetch_opened, stored_objects
from template.storage import keys

from .test_window_apply import Bucket

HK = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


async def test_an_upload_opens_only_with_its_revealed_key_and_under_the_cap():
    bucket = Bucket()
    (name, sealed), (kname, key) = stored_objects(b"signed upload", window=3, hotkey=HK)
    bucket.put(name, sealed, 10)
    assert await fetch_opened(bucket, HK, 3, cap=1 << 20) is None  # not revealed yet
    bucket.put(kname, b"x" * 32, 12)
    assert await fetch_opened(bucket, HK, 3, cap=1 << 20) is None  # a key that does not open it
    bucket.put(kname, key, 12)
    got = await fetch_opened(bucket, HK, 3, cap=1 << 20)
    assert got is not None and got.blob == b"signed upload"
    assert await fetch_opened(bucket, HK, 3, cap=len(sealed) - 1) is None  # over the cap
    assert await fetch_opened(bucket, HK, 4, cap=1 << 20) is None  # no upload of window 4
    bucket.put(keys.upload_key(HK, 4), sealed, 20)  # replayed into the next window
    bucket.put(keys.reveal_key(HK, 4), key, 20)
    assert await fetch_opened(bucket, HK, 4, cap=1 << 20) is None
