"""The miner as 2 gloo ranks under torchrun against a dev chain, a local S3 and a scripted
leader: it uploads (rank 0 only), applies the leader's aggregates on shards with a matching
fingerprint, saves sharded state, stops cleanly on SIGTERM and resumes that state."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest

from template.chain.devchain.launch import start_devchain_process
from template.node.status import read_status
from template.parallel.checkpoint import MANIFEST
from template.parallel.dist import free_port
from tests.miner.conftest import (  # noqa: F401 - s3 is a fixture
    BLOCK_TIME,
    ROOT,
    create_bucket,
    make_wallet,
    miner_argv,
    register,
    s3,
    small_hparams,
    wait_for,
    write_hparams,
    write_storage,
)
from tests.miner.scripted_leader import ScriptedLeader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def start_ranks(argv, log_path, ranks: int = 2) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPLATE_S3_")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={ranks}",
        f"--master_port={free_port()}",
        str(ROOT / "neurons" / "miner.py"),
        *argv,
    ]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _status(state) -> dict:
    return read_status(state) or {}


async def test_two_rank_miner_uploads_syncs_saves_and_resumes(tmp_path, s3, tiny_dataset):  # noqa: F811
    hp = small_hparams()
    chain = await asyncio.to_thread(
        start_devchain_process, tmp_path / "c.sqlite", block_time=BLOCK_TIME,
        log_path=tmp_path / "chain.log", tempo=5,
    )  # fmt: skip
    leader, proc, tasks = None, None, []
    log = tmp_path / "miner.log"
    try:
        leader = await ScriptedLeader.create(chain.url, hp, s3.bucket(f"l-{uuid.uuid4().hex[:8]}"))
        tasks.append(asyncio.create_task(leader.run()))
        make_wallet(tmp_path / "wallets", "m")
        await register(chain.url, make_wallet(tmp_path / "wallets", "m"))
        cfg = s3.bucket(f"m-{uuid.uuid4().hex[:8]}")
        await create_bucket(cfg)
        state = tmp_path / "state"
        argv = miner_argv(
            url=chain.url, wallet_root=tmp_path / "wallets", name="m",
            hparams=write_hparams(tmp_path / "hp.toml", hp),
            storage=write_storage(tmp_path / "s.toml", cfg), dataset=tiny_dataset, state=state,
        )  # fmt: skip
        proc = start_ranks(argv, log)
        await wait_for(lambda: _status(state).get("uploads_done", 0) >= 2, 150, "two uploads")
        await wait_for(lambda: _status(state).get("fingerprint_ok") is True, 60, "fingerprint")
        assert (state / MANIFEST).is_file()
        proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
        proc.wait(60)  # torchrun itself exits 1 when signalled, whatever its workers did
        text = log.read_text(errors="replace")
        assert "rank 1 of 2" in text and "sharded miner stopped" in text, text[-3000:]
        done = _status(state)["uploads_done"]
        proc = start_ranks(argv, log)
        await wait_for(
            lambda: (
                "resumed sharded state" in log.read_text(errors="replace")
                or "sharded state is from another" in log.read_text(errors="replace")
            ),
            90,
            "restart",
        )
        await wait_for(lambda: _status(state).get("uploads_done", 0) > done, 90, "upload again")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if leader is not None:
            await leader.close()
        chain.stop()
