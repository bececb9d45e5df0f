"""The miner as a real process: kill -9 and restart, a chain outage, SIGTERM, a corrupted state."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from urllib.parse import urlparse

import pytest

from template.chain.devchain.launch import start_devchain_process
from template.miner.state import MANIFEST
from template.node.status import read_status

from .conftest import (
    BLOCK_TIME,
    ROOT,
    create_bucket,
    make_wallet,
    miner_argv,
    register,
    small_hparams,
    wait_for,
    write_hparams,
    write_storage,
)
from .scripted_leader import ScriptedLeader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class MinerProcess:
    def __init__(self, argv, log_path):
        self.argv, self.log_path, self.proc = argv, log_path, None

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPLATE_S3_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "neurons" / "miner.py"), *self.argv],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.alive():
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _uploads(state) -> int:
    return (read_status(state) or {}).get("uploads_done", 0)


async def test_kill_restart_outage_and_corrupted_state(tmp_path, s3, tiny_dataset):
    hp = small_hparams()
    db = tmp_path / "chain.sqlite"
    chain_log = tmp_path / "chain.log"
    chain = await asyncio.to_thread(
        start_devchain_process, db, block_time=BLOCK_TIME, log_path=chain_log, tempo=5
    )
    port = urlparse(chain.url).port
    leader = None
    miner = None
    tasks = []
    try:
        leader = await ScriptedLeader.create(
            chain.url, hp, s3.bucket(f"lead-{uuid.uuid4().hex[:8]}")
        )
        tasks.append(asyncio.create_task(leader.run()))
        wallet = make_wallet(tmp_path / "wallets", "m")
        await register(chain.url, wallet)
        cfg = s3.bucket(f"m-{uuid.uuid4().hex[:8]}")
        await create_bucket(cfg)
        state = tmp_path / "state"
        argv = miner_argv(
            url=chain.url, wallet_root=tmp_path / "wallets", name="m",
            hparams=write_hparams(tmp_path / "hp.toml", hp),
            storage=write_storage(tmp_path / "s.toml", cfg), dataset=tiny_dataset, state=state,
        )  # fmt: skip
        miner = MinerProcess(argv, tmp_path / "miner.log").start()
        await wait_for(lambda: _uploads(state) >= 2, 90, "two uploads")

        # kill -9 in the middle of a window, then restart: it resumes from its state
        await asyncio.sleep(hp.window.blocks_per_window * BLOCK_TIME / 2)
        miner.stop(signal.SIGKILL)
        before = read_status(state)
        miner.start()
        await wait_for(lambda: "resumed local state" in miner.log(), 60, "resume")
        assert "local state unusable" not in miner.log()
        await wait_for(
            lambda: _uploads(state) >= before["uploads_done"] + 2, 60, "uploads after restart"
        )
        assert read_status(state)["window"] > before["window"]

        # the chain goes away for a while: the miner carries on and keeps uploading
        chain.stop()
        await asyncio.sleep(2.0)
        chain = await asyncio.to_thread(
            start_devchain_process, db, port=port, block_time=BLOCK_TIME, log_path=chain_log
        )
        after_outage = _uploads(state)
        await wait_for(lambda: _uploads(state) >= after_outage + 2, 60, "uploads after the outage")
        assert miner.alive()

        # SIGTERM ends it cleanly
        assert miner.stop() == 0
        assert "Traceback" not in miner.log()

        # a corrupted state file is detected and rebuilt from the leader's checkpoint
        (tensors,) = state.glob("miner_state.*.safetensors")
        data = bytearray(tensors.read_bytes())
        data[100:200] = bytes(100)
        tensors.write_bytes(bytes(data))
        last = read_status(state)["window"]
        miner.start()
        await wait_for(lambda: "local state unusable" in miner.log(), 60, "corruption detected")
        await wait_for(lambda: "loaded checkpoint" in miner.log(), 60, "the leader's checkpoint")
        await wait_for(
            lambda: (read_status(state) or {}).get("window", -1) > last + 1, 60, "a window"
        )
        await wait_for(lambda: read_status(state).get("fingerprint_ok") is True, 30, "fingerprint")
        assert (state / MANIFEST).is_file() and read_status(state)["in_sync"] is True
        assert miner.stop() == 0
    finally:
        if miner is not None and miner.alive():
            miner.stop(signal.SIGKILL)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if leader is not None:
            await leader.close()
        chain.stop()
