"""Each start-up error names the fix; the entry point prints it as one line and exits 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from template.chain.devchain.testing import running_devchain
from template.miner.args import build_parser
from template.miner.startup import build_miner
from template.node.errors import StartupError
from template.node.startup import close_all
from template.storage import BucketConfig

from ..storage.fault_proxy import Fault, FaultProxy
from .conftest import (
    BLOCK_TIME,
    ROOT,
    create_bucket,
    make_wallet,
    miner_argv,
    register,
    small_hparams,
    write_hparams,
    write_storage,
)

pytestmark = pytest.mark.timeout(60)


def _argv(tmp_path, tiny_dataset, url="http://127.0.0.1:9", name="w", storage=None):
    hp = write_hparams(tmp_path / "hp.toml", small_hparams())
    cfg = BucketConfig("http://127.0.0.1:9", "nobucket", "us-east-1", "path", "k", "s")
    return miner_argv(
        url=url, wallet_root=tmp_path / "wallets", name=name, hparams=hp,
        storage=storage or write_storage(tmp_path / "s.toml", cfg), dataset=tiny_dataset,
        state=tmp_path / "state",
    )  # fmt: skip


async def _startup_error(argv) -> str:
    with pytest.raises(StartupError) as e:
        miner, closers = await build_miner(build_parser().parse_args(argv))
        await close_all(closers)
    return str(e.value)


async def test_missing_wallet(tmp_path, tiny_dataset):
    msg = await _startup_error(_argv(tmp_path, tiny_dataset))
    assert "wallet 'w' not found" in msg and "btcli wallet create" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
async def test_cuda_requested_but_absent(tmp_path, tiny_dataset):
    argv = _argv(tmp_path, tiny_dataset) + ["--device", "cuda"]
    msg = await _startup_error(argv)
    assert "CUDA" in msg and "--device cpu" in msg


async def test_unregistered_hotkey_and_unreachable_bucket(tmp_path, s3, tiny_dataset):
    async with running_devchain(tmp_path, block_time=BLOCK_TIME) as chain:
        wallet = make_wallet(tmp_path / "wallets", "w")
        msg = await _startup_error(_argv(tmp_path, tiny_dataset, chain.url))
        assert f"{wallet.hotkey.ss58_address} is not registered on netuid 1" in msg
        assert "btcli subnets register --netuid 1 -w w -H default" in msg

        await register(chain.url, wallet)
        # no server at the endpoint
        msg = await _startup_error(_argv(tmp_path, tiny_dataset, chain.url))
        assert "unreachable" in msg and "endpoint URL" in msg
        # the bucket does not exist
        missing = s3.bucket("not-created-yet")
        argv = _argv(
            tmp_path, tiny_dataset, chain.url, storage=write_storage(tmp_path / "m.toml", missing)
        )
        msg = await _startup_error(argv)
        assert "does not exist" in msg and "Create it" in msg
        # wrong write keys (the server answers AccessDenied)
        await create_bucket(missing)
        proxy = FaultProxy(s3.endpoint_url).start()
        try:
            proxy.set_fault(Fault("status", status=403, code="AccessDenied"))
            denied = BucketConfig(proxy.endpoint_url, missing.bucket, "us-east-1", "path", "k", "s")
            store = write_storage(tmp_path / "d.toml", denied)
            msg = await _startup_error(_argv(tmp_path, tiny_dataset, chain.url, storage=store))
            assert "refused the write keys" in msg and "TEMPLATE_S3_WRITE_ACCESS_KEY_ID" in msg
        finally:
            proxy.stop()
        # once the bucket exists and the keys work, start-up succeeds
        miner, closers = await build_miner(build_parser().parse_args(argv))
        try:
            assert miner.settings.uid == 0 and miner.trainer.applied_through >= -1
        finally:
            await close_all(closers)


def test_entry_point_prints_one_line_and_exits_2(tmp_path, tiny_dataset):
    argv = _argv(tmp_path, tiny_dataset)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "neurons" / "miner.py"), *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("miner: wallet 'w' not found")
    assert "Traceback" not in proc.stderr


async def test_dataset_from_a_bucket_is_mirrored_under_the_state_dir(tmp_path, s3, tiny_dataset):
    from template.node.startup import open_dataset
    from template.storage import StorageClient, upload_dataset

    cfg = s3.bucket("dataset-bucket-test")
    await create_bucket(cfg)
    async with StorageClient(cfg) as client:
        await upload_dataset(client, tiny_dataset, "v1/datasets/tiny")
    conf = tmp_path / "dataset.toml"
    conf.write_text(
        f'[dataset]\nendpoint_url = "{cfg.endpoint_url}"\nbucket = "{cfg.bucket}"\n'
        f'access_key_id = "{cfg.access_key_id}"\nsecret_access_key = "{cfg.secret_access_key}"\n'
    )
    args = build_parser().parse_args(
        ["--dataset.bucket-config", str(conf), "--dataset.prefix", "v1/datasets/tiny"]
    )
    ds = await open_dataset(args, small_hparams(), tmp_path / "state")
    assert ds.layout.num_train > 100
    assert (tmp_path / "state" / "dataset").is_dir()
    args.dataset_bucket_config = str(tmp_path / "nope.toml")
    with pytest.raises(StartupError, match="--dataset.bucket-config"):
        await open_dataset(args, small_hparams(), tmp_path / "state")
