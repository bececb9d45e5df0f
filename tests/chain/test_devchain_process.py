"""The dev chain as a subprocess: crash (kill -9) and restart on the same database; the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest

from template.chain.devchain.auth import sign_request
from template.chain.devchain.cli import render
from template.chain.devchain.client import DevChainClient
from template.chain.devchain.launch import start_devchain_process
from template.signing import dev_keypair

from .conftest import fresh_key, wait_epoch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _post(url: str, body: bytes, headers: dict) -> int:
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        return r.status


async def _set_up(url: str):
    alice = dev_keypair("//Alice")
    funder = DevChainClient(url, 1, alice, alice)
    vcold, mcold = fresh_key(), fresh_key()
    await funder.transfer(vcold.ss58_address, 100)
    await funder.transfer(mcold.ss58_address, 10)
    v = DevChainClient(url, 1, fresh_key(), vcold)
    m = DevChainClient(url, 1, fresh_key(), mcold)
    await v.register()
    muid = await m.register()
    await v.add_stake(50)
    await wait_epoch(v)
    await v.set_weights([muid], [1.0], 0)
    await m.commit(b"bucket=http://127.0.0.1:9000/m")
    await wait_epoch(v)
    await funder.close()
    return v, m


async def test_kill_9_and_restart_keeps_all_state(tmp_path):
    db = tmp_path / "chain.sqlite"
    log = tmp_path / "chain.log"
    proc = await asyncio.to_thread(
        start_devchain_process, db, block_time=0.1, log_path=log, tempo=4, weights_rate_limit=0
    )
    try:
        v, m = await _set_up(proc.url)
        # a signed write captured before the crash, replayed after the restart
        body = json.dumps({"netuid": 1, "data": b"replayed".hex()}).encode()
        node = await m._node_ss58()
        captured = sign_request(m._hotkey, "POST", "/tx/commit", body, node)
        await m.wait_for_block(await m.block() + 1)
        assert await _post(proc.url + "/tx/commit", body, captured) == 200
        mg, commits, weights = await v.metagraph(), await v.commitments(), await v.weights()
        balance, block = await v.balance(), await v.block()
        ts = await v.block_timestamp(block)
        await v.close(), await m.close()
    finally:
        proc.kill()
    assert proc.proc.returncode == -9

    proc = await asyncio.to_thread(
        start_devchain_process, db, block_time=0.1, log_path=log, tempo=99
    )
    try:
        async with DevChainClient(proc.url, 1, v._hotkey, v._coldkey) as v2:
            assert await v2.block() >= block
            assert await v2.block_timestamp(block) == ts
            assert await v2.commitments() == commits
            assert await v2.weights() == weights
            assert await v2.balance() == pytest.approx(balance)
            assert (await v2.subnet_params()).tempo == 4  # genesis flags ignored on an old db
            mg2 = await v2.metagraph()
            for a, b in zip(mg.neurons, mg2.neurons, strict=True):
                assert (a.uid, a.hotkey, a.coldkey, a.validator_permit) == (
                    b.uid, b.hotkey, b.coldkey, b.validator_permit,
                )  # fmt: skip
            assert mg2.by_uid(1).incentive == pytest.approx(1.0)  # consensus outputs kept
            await v2.wait_for_block(block + 3, timeout=10)  # blocks keep coming
            assert await _post(proc.url + "/tx/commit", body, captured) == 409  # replay
            assert await v2.commitments() == commits
            assert commits[m.hotkey] == b"replayed"
    finally:
        proc.stop()


async def test_show_cli_prints_tables(tmp_path):
    proc = await asyncio.to_thread(start_devchain_process, tmp_path / "c.sqlite", block_time=0.1)
    try:
        alice = dev_keypair("//Alice")
        async with DevChainClient(proc.url, 1, alice, alice) as c:
            await c.register()
            await c.wait_for_block(3, timeout=10)

        def show(view: str) -> str:
            cmd = [sys.executable, "-m", "template.chain.devchain", "show", "--url", proc.url]
            out = subprocess.run(cmd + [view], capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            return out.stdout

        neurons = await asyncio.to_thread(show, "neurons")  # the command line, once
        assert "validator_permit" in neurons and alice.ss58_address[:8] in neurons
        blocks = await asyncio.to_thread(render, proc.url, "blocks")
        assert blocks.splitlines()[0].split()[:2] == ["block", "unix"]
        assert "incentive" in await asyncio.to_thread(render, proc.url, "incentive")
        assert "weight" in await asyncio.to_thread(render, proc.url, "weights")
        subnet = await asyncio.to_thread(render, proc.url, "subnet")
        # //Alice registered her own address, the genesis subnet's owner hotkey: uid 0
        rows = {line.split()[0]: line.split()[1:] for line in subnet.splitlines()[2:]}
        assert rows["owner_uid"] == ["0"] and rows["commit_reveal"] == ["1"]
    finally:
        proc.stop()
