"""Helpers for the miner tests: small hparams, wallets, storage config files, a local S3."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import bittensor as bt
import pytest

from template.hparams import HParams, load_hparams
from template.storage import BucketConfig, StorageClient
from template.storage.local_server import start_local_s3

BLOCK_TIME = 0.2

# A smaller model and short windows: every test runs on 2 shared CPU cores.
SMALL = {
    "model.hidden_size": 64,
    "model.intermediate_size": 128,
    "model.num_layers": 2,
    "model.seq_len": 32,
    "train.inner_steps": 2,
    "train.batch_size": 4,
    "train.warmup_steps": 2,
    "window.blocks_per_window": 10,
    "window.upload_blocks": 3,
    "window.grace_blocks": 1,
    "window.reveal_blocks": 2,
    "window.publish_blocks": 7,
    "window.checkpoint_every": 2,
    "window.peers_per_window": 4,
    "window.reserve_peers": 0,
}


def small_hparams(**extra) -> HParams:
    return load_hparams("tiny").replace(**{**SMALL, **extra})


def write_hparams(path: Path, hp: HParams) -> Path:
    """``hp`` as a TOML file (what --hparams takes)."""
    lines = [f'name = "{hp.name}"']
    for section, values in hp.to_dict().items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for k, v in values.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            else:
                lines.append(f"{k} = {v!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def make_wallet(root: Path, name: str) -> bt.Wallet:
    """A btcli-style wallet (no passwords) under ``root``."""
    w = bt.Wallet(name=name, hotkey="default", path=str(root))
    w.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
    w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return w


async def register(url: str, wallet: bt.Wallet) -> int:
    """Fund the wallet's coldkey from //Alice and register its hotkey on netuid 1."""
    from template.chain.devchain.client import DevChainClient
    from template.signing import dev_keypair

    alice = dev_keypair("//Alice")
    async with DevChainClient(url, 1, alice, alice) as funder:
        await funder.transfer(wallet.coldkey.ss58_address, 10)
    async with DevChainClient(url, 1, wallet.hotkey, wallet.coldkey) as c:
        return await c.register()


def write_storage(path: Path, cfg: BucketConfig) -> Path:
    path.write_text(
        "[storage]\n"
        f'endpoint_url = "{cfg.endpoint_url}"\n'
        f'bucket = "{cfg.bucket}"\n'
        'region = "us-east-1"\n'
        f'write = {{ access_key_id = "{cfg.access_key_id}", secret_access_key = "{cfg.secret_access_key}" }}\n'
        f'read = {{ access_key_id = "{cfg.access_key_id}", secret_access_key = "{cfg.secret_access_key}" }}\n'
    )
    return path


async def create_bucket(cfg: BucketConfig) -> None:
    async with StorageClient(cfg) as c:
        await c.create_bucket()


def miner_argv(
    *,
    url: str,
    wallet_root: Path,
    name: str,
    hparams: Path,
    storage: Path,
    dataset: Path,
    state: Path,
    max_windows: int = 0,
    max_steps: int = 2,
) -> list[str]:
    return [
        "--subtensor.chain_endpoint", url,
        "--netuid", "1",
        "--wallet.name", name,
        "--wallet.hotkey", "default",
        "--wallet.path", str(wallet_root),
        "--hparams", str(hparams),
        "--device", "cpu",
        "--storage.config", str(storage),
        "--storage.allow-private",
        "--dataset.path", str(dataset),
        "--state.dir", str(state),
        "--run.max-windows", str(max_windows),
        "--miner.max-steps", str(max_steps),
    ]  # fmt: skip


@pytest.fixture(scope="session")
def s3():
    with start_local_s3() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_s3_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TEMPLATE_S3_"):
            monkeypatch.delenv(name)


async def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    """Poll ``predicate()`` (sync) until true; AssertionError naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


ROOT = Path(__file__).resolve().parents[2]
