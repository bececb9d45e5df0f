from template.storage import delete_old_objects, keys

HK = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


async def test_retention_deletes_only_old_windowed_objects(client):
    for w in range(10):
        await client.put_bytes(keys.upload_key(HK, w), b"u")
        await client.put_bytes(keys.reveal_key(HK, w), b"k")
        await client.put_bytes(keys.peers_key(w), b"{}")
        await client.put_bytes(keys.verdicts_key(w), b"{}")
    for w in (2, 5, 8):
        await client.put_bytes(keys.checkpoint_key(w), b"c")
    await client.put_bytes(keys.latest_checkpoint_key(), b"{}")
    await client.put_bytes(keys.dataset_manifest_key(keys.dataset_prefix("d")), b"{}")
    await client.put_bytes("someone-elses/0000000001", b"x")

    n = await delete_old_objects(client, current_window=9, keep_windows=3)
    assert n == 24  # uploads, seal keys, peers and verdicts of windows 0..5
    left = {o.key for o in await client.list("")}
    assert keys.upload_key(HK, 5) not in left and keys.upload_key(HK, 6) in left
    assert keys.reveal_key(HK, 5) not in left and keys.reveal_key(HK, 6) in left
    assert keys.verdicts_key(5) not in left and keys.verdicts_key(6) in left
    assert keys.peers_key(9) in left and keys.checkpoint_key(2) in left
    assert keys.latest_checkpoint_key() in left and "someone-elses/0000000001" in left

    n = await delete_old_objects(client, 9, 3, keep_checkpoints=1)
    left = {o.key for o in await client.list("")}
    assert n == 2 and keys.checkpoint_key(8) in left and keys.checkpoint_key(5) not in left
    assert keys.latest_checkpoint_key() in left
    assert await delete_old_objects(client, 9, 3) == 0
