"""Miners on a dev chain with a scripted leader and a local S3, all in this process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
import torch

from template.chain.devchain.testing import running_devchain
from template.miner.args import build_parser
from template.miner.startup import build_miner
from template.node.startup import close_all
from template.node.status import read_status
from template.protocol.fingerprint import fingerprints_match, model_fingerprint
from template.training.inner import make_optimizer, train_steps
from template.training.model import build_model

from ..storage.fault_proxy import Fault, FaultProxy
from .conftest import (
    BLOCK_TIME,
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

pytestmark = pytest.mark.timeout(150)


class Net:
    """A dev chain, a leader and helpers to start miners in this event loop."""

    def __init__(self, handle, s3, tmp_path, tiny_dataset, hp, bucket_endpoint=None):
        self.handle, self.s3, self.tmp, self.dataset, self.hp = (
            handle,
            s3,
            tmp_path,
            tiny_dataset,
            hp,
        )
        self.endpoint = bucket_endpoint or s3.endpoint_url
        self.hparams = write_hparams(tmp_path / "hp.toml", hp)
        self.wallets = tmp_path / "wallets"
        self.tasks: list[asyncio.Task] = []
        self.miners = {}
        self.closers = []

    def bucket(self, name):
        cfg = self.s3.bucket(f"{name}-{uuid.uuid4().hex[:8]}")
        return type(cfg)(
            self.endpoint, cfg.bucket, cfg.region, "path", cfg.access_key_id, cfg.secret_access_key
        )

    async def leader(self):
        self.lead = await ScriptedLeader.create(self.handle, self.hp, self.bucket("leader"))
        self.tasks.append(asyncio.create_task(self.lead.run()))
        return self.lead

    async def start_miner(self, name, max_windows=0):
        wallet = make_wallet(self.wallets, name)
        await register(self.handle.url, wallet)
        cfg = self.bucket(name)
        await create_bucket(cfg)
        argv = miner_argv(
            url=self.handle.url, wallet_root=self.wallets, name=name, hparams=self.hparams,
            storage=write_storage(self.tmp / f"{name}.toml", cfg), dataset=self.dataset,
            state=self.tmp / f"state-{name}", max_windows=max_windows,
        )  # fmt: skip
        miner, closers = await build_miner(build_parser().parse_args(argv))
        self.closers += closers
        self.miners[name] = miner
        self.tasks.append(asyncio.create_task(miner.run()))
        return miner

    async def close(self):
        for m in self.miners.values():
            m.request_stop()
        for t in self.tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await close_all(self.closers)
        await self.lead.close()


def warm_up(hp) -> None:
    """One throwaway training step: the first step of a process pays one-off set-up costs
    that would otherwise eat into the first (2 s) window of these tests."""
    model = build_model(hp.model)
    seqs = torch.randint(0, hp.model.vocab_size, (2, hp.model.seq_len + 1))
    train_steps(model, make_optimizer(model, hp.train), [seqs], hp.train, start_step=0)


@contextlib.asynccontextmanager
async def network(tmp_path, s3, tiny_dataset, **kw):
    hp = small_hparams()
    warm_up(hp)
    async with running_devchain(tmp_path, block_time=BLOCK_TIME, tempo=5) as handle:
        net = Net(handle, s3, tmp_path, tiny_dataset, hp, **kw)
        await net.leader()
        try:
            yield net
        finally:
            await net.close()


def assert_matches_leader(miner, leader):
    """Every window the miner applied and the leader published has the same fingerprint."""
    common = sorted(set(miner.sync.own_fingerprints) & set(leader.fingerprints))
    assert common, "no window applied by both"
    for a in common:
        assert fingerprints_match(miner.sync.own_fingerprints[a], leader.fingerprints[a]), (
            f"window {a}"
        )
    return common


async def test_two_miners_stay_in_sync_and_upload_on_time(tmp_path, s3, tiny_dataset):
    async with network(tmp_path, s3, tiny_dataset) as net:
        a = await net.start_miner("alice", max_windows=4)
        b = await net.start_miner("bob", max_windows=4)
        await asyncio.wait_for(asyncio.gather(net.tasks[-2], net.tasks[-1]), 90)
        lead = net.lead
        await wait_for(lambda: lead.next_window > b.position.last_window, 30, "leader to catch up")
        for m in (a, b):
            status = read_status(m.settings.state_dir)
            assert status["role"] == "miner" and status["uid"] == m.settings.uid
            assert status["uploads_done"] == 4 and status["uploads_missed"] == 0
            assert status["in_sync"] is True
            assert 0 < status["utilization"] <= 1
            trained = range(m.position.last_window - 3, m.position.last_window + 1)
            assert [lead.verdicts.get((w, m.hotkey)) for w in trained] == ["ok"] * 4
            common = assert_matches_leader(m, lead)
            assert len(common) >= 2
        # both uploads made it into the aggregates
        both = {a.settings.uid, b.settings.uid}
        assert any({u for u, _ in peers} == both for peers in lead.peers.values())


@pytest.mark.timeout(240)  # above its own waits (180 s): a stall names the step that stalled
async def test_late_miner_catches_up_from_checkpoint_and_aggregates(tmp_path, s3, tiny_dataset):
    async with network(tmp_path, s3, tiny_dataset) as net:
        first = await net.start_miner("early")
        lead = net.lead
        await wait_for(lambda: first.position.uploads_done >= 3, 60, "three uploads")
        await wait_for(
            lambda: any(w >= 1 and w % 2 == 1 for w in lead.fingerprints), 30, "a checkpoint"
        )
        late = await net.start_miner("late", max_windows=3)
        # right after start-up the late miner holds the global model of a published window
        at = late.trainer.applied_through
        assert at >= 1 and at in lead.fingerprints
        assert fingerprints_match(
            model_fingerprint(late.trainer.global_model), lead.fingerprints[at]
        )
        await asyncio.wait_for(net.tasks[-1], 60)
        await wait_for(lambda: lead.next_window > late.trainer.applied_through, 30, "leader")
        assert late.trainer.applied_through > at  # it applied windows live after catching up
        assert len(assert_matches_leader(late, lead)) >= 2
        assert (
            late.sync.applier.in_sync and read_status(late.settings.state_dir)["uploads_done"] == 3
        )


async def test_storage_outage_mid_window_does_not_stop_the_miner(tmp_path, s3, tiny_dataset):
    proxy = FaultProxy(s3.endpoint_url).start()
    try:
        async with network(tmp_path, s3, tiny_dataset, bucket_endpoint=proxy.endpoint_url) as net:
            m = await net.start_miner("faulty")
            task = net.tasks[-1]
            await wait_for(lambda: m.position.uploads_done >= 2, 60, "two uploads")
            # every S3 request fails for about two windows, starting mid-window
            await asyncio.sleep(hp_window_seconds(net.hp) / 2)
            proxy.set_fault(Fault("status", status=503, code="SlowDown"))
            await asyncio.sleep(2 * hp_window_seconds(net.hp))
            proxy.set_fault(None)
            assert not task.done()
            missed, done, applied = (
                m.position.uploads_missed,
                m.position.uploads_done,
                m.trainer.applied_through,
            )
            assert missed >= 1
            await wait_for(lambda: m.position.uploads_done >= done + 2, 60, "uploads after")
            await wait_for(lambda: m.trainer.applied_through >= applied + 2, 60, "aggregates after")
            await wait_for(
                lambda: m.sync.applier.fingerprint_ok is True, 60, "a matching fingerprint"
            )
            assert not task.done() and m.sync.applier.in_sync
    finally:
        proxy.stop()


def hp_window_seconds(hp) -> float:
    return hp.window.blocks_per_window * BLOCK_TIME
