"""Set up a local subnet: dev chain, local S3, wallets, registration, stake, buckets, dataset.

Everything lives under one run folder::

    runs/localnet-<ts>/
      wallets/<node>/...      btcli-style wallets, unencrypted (local testing only)
      nodes/<node>/           each neuron's --state.dir (status.json) and storage.toml
      dataset/                prepared token shards + manifest
      logs/<process>.log      one log per process (chain, s3, every neuron)
      devchain.sqlite         the chain's database
      network.json            endpoints, uids and hotkeys of this run
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bittensor as bt

from template.chain.devchain.client import DevChainClient
from template.signing import dev_keypair
from template.storage.client import StorageClient
from template.storage.config import BucketConfig
from template.storage.datasets import upload_dataset
from template.storage.local_server import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY
from template.training.corpus import fallback_corpus

from .config import (
    FUND_TAO,
    GENESIS,
    NETUID,
    ROOT,
    SHARED_CORPUS,
    VALIDATOR_STAKE_TAO,
    LocalnetConfig,
    genesis,
)
from .processes import Child, Children, start_child

logger = logging.getLogger(__name__)

DATASET_BUCKET = "localnet-dataset"
DATASET_PREFIX = "v1/datasets/localnet"
REGION = "us-east-1"


@dataclass
class NodeSpec:
    """One neuron of the run."""

    name: str  # miner-0, validator-1, ...
    role: str  # "miner" | "validator"
    wallet_name: str
    hotkey: str = ""  # ss58
    coldkey: str = ""  # ss58
    uid: int | None = None
    stake: float = 0.0
    bucket: str = ""
    state_dir: str = ""
    storage_config: str = ""
    log: str = ""
    metrics_port: int = 0


@dataclass
class Network:
    """What set-up produced: endpoints, the dataset and every node."""

    run_dir: str
    chain_url: str
    s3_endpoint: str
    netuid: int
    block_time: float
    hparams: str
    dataset_args: list[str] = field(default_factory=list)
    nodes: list[NodeSpec] = field(default_factory=list)

    def save(self) -> Path:
        path = Path(self.run_dir) / "network.json"
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @property
    def miners(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "miner"]

    @property
    def validators(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "validator"]


# --- processes ---------------------------------------------------------------------------


def start_chain(cfg: LocalnetConfig, children: Children, port: int) -> Child:
    """The embedded dev chain as a child process (the command devchain/launch.py runs, but in
    its own session with a log file; wait for ``chain_url(port)/info`` before using it)."""
    cmd = [sys.executable, "-m", "template.chain.devchain", "--port", str(port)]
    cmd += ["--db", str(cfg.run_dir / "devchain.sqlite"), "--block-time", str(cfg.block_time)]
    cmd += ["--netuid", str(NETUID)]
    for name, value in genesis(cfg.validators).items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return children.add(start_child("chain", cmd, cfg.logs_dir / "chain.log", cwd=ROOT))


def start_s3(cfg: LocalnetConfig, children: Children, port: int) -> Child:
    """moto's S3 server on loopback as a child process, with a write journal in the run folder
    so a restarted S3 comes back with every bucket and object (template/storage/persistent_s3.py;
    wait for ``/moto-api/data.json`` before using it)."""
    cmd = [sys.executable, "-m", "template.storage.persistent_s3", "--port", str(port)]
    cmd += ["--journal", str(cfg.run_dir / "s3-journal.jsonl")]
    return children.add(start_child("s3", cmd, cfg.logs_dir / "s3.log", cwd=ROOT))


# --- wallets and chain set-up ---------------------------------------------------------------


def create_wallet(wallets_dir: Path, name: str) -> bt.Wallet:
    """A btcli-compatible wallet with an unencrypted coldkey and hotkey ``default``."""
    wallet = bt.Wallet(name, "default", path=str(wallets_dir))
    if not (wallets_dir / name / "coldkey").exists():
        wallet.create_new_coldkey(use_password=False, suppress=True)
    if not (wallets_dir / name / "hotkeys" / "default").exists():
        wallet.create_new_hotkey(use_password=False, suppress=True)
    return wallet


def plan_nodes(cfg: LocalnetConfig) -> list[NodeSpec]:
    """Validators first (uids 0..M-1, decreasing stake), then miners."""
    nodes = [
        NodeSpec(
            f"validator-{i}", "validator", f"validator-{i}", stake=VALIDATOR_STAKE_TAO - 100 * i
        )
        for i in range(cfg.validators)
    ]
    nodes += [NodeSpec(f"miner-{i}", "miner", f"miner-{i}") for i in range(cfg.miners)]
    for i, n in enumerate(nodes):
        n.bucket = f"localnet-{n.name}"
        n.state_dir = str(cfg.run_dir / "nodes" / n.name)
        n.log = str(cfg.logs_dir / f"{n.name}.log")
        n.metrics_port = cfg.metrics_base_port + i if cfg.metrics_base_port else 0
    return nodes


async def register_nodes(chain_url: str, nodes: list[NodeSpec], wallets: dict[str, bt.Wallet]):
    """Fund each coldkey from //Alice, register every hotkey, stake the validators."""
    alice = dev_keypair("//Alice")
    async with DevChainClient(chain_url, NETUID, alice, alice) as funder:
        for n in nodes:
            await funder.transfer(n.coldkey, FUND_TAO)
    for n in nodes:
        w = wallets[n.name]
        async with DevChainClient(chain_url, NETUID, w.hotkey, w.coldkey) as c:
            n.uid = await c.register()
            if n.stake > 0:
                await c.add_stake(n.stake)
        logger.info(
            "registered %s as uid %d%s", n.name, n.uid, f", staked {n.stake:g}" * bool(n.stake)
        )


async def wait_for_permits(
    chain_url: str, nodes: list[NodeSpec], block_time: float, tempos: int = 3
) -> None:
    """Wait until every staked validator holds its permit (given at the first epoch after
    staking), at most ``tempos`` tempos: a validator started before exits with "no validator
    permit". Raises RuntimeError if the permits do not come."""
    want = {n.uid for n in nodes if n.role == "validator"}
    deadline = time.monotonic() + tempos * GENESIS["tempo"] * block_time + 10.0
    async with DevChainClient(chain_url, NETUID, dev_keypair("//Alice")) as c:
        while True:
            mg = await c.metagraph()
            if all((n := mg.by_uid(u)) is not None and n.validator_permit for u in want):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"validators {sorted(want)} got no permit within {tempos} tempos"
                )
            await asyncio.sleep(block_time)


# --- storage ----------------------------------------------------------------------------------


def bucket_config(endpoint: str, bucket: str) -> BucketConfig:
    return BucketConfig(
        endpoint, bucket, REGION, "path", LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY
    )


def storage_toml(endpoint: str, bucket: str) -> str:
    """A node's storage config: the bucket with write keys (kept) and read keys (published).
    moto accepts any key, so both pairs are the local test pair."""
    pair = f'access_key_id = "{LOCAL_ACCESS_KEY_ID}"\nsecret_access_key = "{LOCAL_SECRET_ACCESS_KEY}"\n'
    return (
        f'[storage]\nendpoint_url = "{endpoint}"\nbucket = "{bucket}"\nregion = "{REGION}"\n'
        f'addressing_style = "path"\n\n[storage.write]\n{pair}\n[storage.read]\n{pair}'
    )


def dataset_toml(endpoint: str, bucket: str) -> str:
    """The dataset bucket for --dataset.bucket-config: one flat [dataset] table with the READ
    keys only. Neurons never see the dataset bucket's write key (set-up alone uploads)."""
    return (
        f'[dataset]\nendpoint_url = "{endpoint}"\nbucket = "{bucket}"\nregion = "{REGION}"\n'
        f'addressing_style = "path"\naccess_key_id = "{LOCAL_ACCESS_KEY_ID}"\n'
        f'secret_access_key = "{LOCAL_SECRET_ACCESS_KEY}"\n'
    )


def write_secret(path: Path, text: str) -> None:
    """Write a file holding keys: created 0600 (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT


async def create_buckets(endpoint: str, buckets: list[str]) -> None:
    for name in buckets:
        client = StorageClient(bucket_config(endpoint, name))
        try:
            await client.create_bucket()
        finally:
            await client.close()


def write_storage_configs(endpoint: str, nodes: list[NodeSpec]) -> None:
    for n in nodes:
        path = Path(n.state_dir) / "storage.toml"
        write_secret(path, storage_toml(endpoint, n.bucket))
        n.storage_config = str(path)


# --- dataset ------------------------------------------------------------------------------------


def corpus_text(cfg: LocalnetConfig) -> tuple[str, str]:
    """(text, where it came from): --corpus, else ../shared/data/tinyshakespeare.txt, else stdlib."""
    if cfg.corpus is not None:
        from template.training.corpus import iter_documents

        text = "\n".join(iter_documents([cfg.corpus]))
        return text[: cfg.corpus_limit], str(cfg.corpus)
    if SHARED_CORPUS.is_file():
        return SHARED_CORPUS.read_text(encoding="utf-8")[: cfg.corpus_limit], str(SHARED_CORPUS)
    return fallback_corpus(cfg.corpus_limit), "python standard library sources"


def prepare_dataset(cfg: LocalnetConfig, vocab_size: int) -> Path:
    """Byte-level token shards of the corpus in ``run_dir/dataset``."""
    from template.training.shards import write_shards
    from template.training.tokenizer import ByteTokenizer

    tok = ByteTokenizer()
    if vocab_size != tok.vocab_size:
        raise ValueError(
            f"the hparams' vocab_size is {vocab_size} but the local subnet prepares a byte-level "
            f"dataset ({tok.vocab_size}); use --hparams tiny, or --dataset-path with a folder "
            "prepared by scripts/prepare_dataset.py --tokenizer <your tokenizer>"
        )
    text, source = corpus_text(cfg)
    step = 50_000
    docs = (tok.encode(text[i : i + step]) + [tok.eot_id] for i in range(0, len(text), step))
    out = cfg.run_dir / "dataset"
    manifest = write_shards(
        docs, out, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=1 << 20
    )
    logger.info(
        "dataset: %d tokens in %d shard(s) from %s",
        manifest.total_tokens,
        len(manifest.shards),
        source,
    )
    return out


async def publish_dataset(endpoint: str, local_dir: Path, run_dir: Path) -> list[str]:
    """Upload the dataset to its own bucket; the neuron flags that read it from there."""
    await create_buckets(endpoint, [DATASET_BUCKET])
    client = StorageClient(bucket_config(endpoint, DATASET_BUCKET))
    try:
        await upload_dataset(client, local_dir, DATASET_PREFIX)
    finally:
        await client.close()
    path = run_dir / "dataset-bucket.toml"
    write_secret(path, dataset_toml(endpoint, DATASET_BUCKET))
    return ["--dataset.bucket-config", str(path), "--dataset.prefix", DATASET_PREFIX]


# --- neurons ----------------------------------------------------------------------------------


def node_ranks(cfg: LocalnetConfig, net: Network, node: NodeSpec) -> int:
    """Processes of ``node``: the first miner and the first validator may run as N ranks
    (docs/multi_gpu.md); every other node is one process."""
    if net.miners and node is net.miners[0]:
        return cfg.miner_ranks
    if net.validators and node is net.validators[0]:
        return cfg.validator_ranks
    return 1


def neuron_command(cfg: LocalnetConfig, net: Network, node: NodeSpec) -> list[str]:
    if cfg.neurons_dir is None:  # the installed neurons (template/commands)
        cmd = [sys.executable, "-m", f"template.commands.{node.role}"]
    else:
        cmd = [sys.executable, str(Path(cfg.neurons_dir) / f"{node.role}.py")]
    ranks = node_ranks(cfg, net, node)
    if ranks > 1:
        launch = ["-m", "template.parallel.launch", "--ranks", str(ranks), "--"]
        cmd = [cmd[0], *launch, *cmd[1:]]
    cmd += ["--wallet.name", node.wallet_name, "--wallet.hotkey", "default"]
    cmd += ["--wallet.path", str(cfg.run_dir / "wallets")]
    cmd += ["--subtensor.network", "dev", "--subtensor.chain_endpoint", net.chain_url]
    cmd += ["--netuid", str(net.netuid), "--hparams", cfg.hparams, "--device", cfg.device]
    cmd += ["--state.dir", node.state_dir, "--storage.config", node.storage_config]
    cmd += ["--storage.allow-private", *net.dataset_args, "--logging.level", cfg.log_level]
    if node.metrics_port:
        cmd += ["--metrics.port", str(node.metrics_port)]
    role_args = cfg.miner_args if node.role == "miner" else cfg.validator_args
    return cmd + list(cfg.extra_args) + list(role_args)


def neuron_env(cfg: LocalnetConfig, role: str, ranks: int = 1) -> dict[str, str]:
    """Few threads per process: N neurons share the machine's cores (``cfg.threads_of``); a
    validator run as ``ranks`` processes splits its share among them."""
    n = str(cfg.threads_of(role, ranks))
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }


def start_neurons(cfg: LocalnetConfig, net: Network, children: Children) -> None:
    for node in net.validators + net.miners:
        cmd = neuron_command(cfg, net, node)
        env = neuron_env(cfg, node.role, node_ranks(cfg, net, node))
        children.add(start_child(node.name, cmd, Path(node.log), env=env, cwd=ROOT))
