"""The dev chain's btcli-like command line: fund, register, stake, create a subnet, set
parameters, and clear messages for a wrong netuid or a missing wallet."""

from __future__ import annotations

import json

import bittensor as bt
import pytest

from template.chain.devchain.launch import start_devchain_process
from template.chain.devchain.tx_cli import main as act

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    proc = start_devchain_process(tmp / "chain.sqlite", block_time=0.1, tempo=5)
    yield proc
    proc.stop()


def _wallet(path, name: str) -> bt.Wallet:
    w = bt.Wallet(name, "default", path=str(path))
    w.create_new_coldkey(use_password=False, suppress=True)
    w.create_new_hotkey(use_password=False, suppress=True)
    return w


def _run(capsys, command: str, *argv: str) -> dict:
    act(command, list(argv))
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_fund_register_stake_create_and_set(node, tmp_path, capsys):
    w = _wallet(tmp_path, "miner1")
    common = ["--url", node.url, "--wallet-path", str(tmp_path)]
    funded = _run(capsys, "fund", *common, "--to-wallet", "miner1", "--tao", "50")
    assert funded["funded"] == w.coldkey.ss58_address and funded["balance"] == 50.0
    reg = _run(capsys, "register", *common, "-w", "miner1", "--netuid", "1")
    assert reg["hotkey"] == w.hotkey.ss58_address and reg["uid"] >= 0
    assert _run(capsys, "stake", *common, "-w", "miner1", "--tao", "10")["staked"] == 10.0
    made = _run(capsys, "create-subnet", "--url", node.url, "--uri", "//Bob", "--netuid", "5")
    assert made["netuid"] == 5
    out = _run(
        capsys,
        "set",
        "--url",
        node.url,
        "--uri",
        "//Bob",
        "--netuid",
        "5",
        "tempo=7",
        "commit_reveal=0",
    )
    assert out["params"]["tempo"] == 7 and out["params"]["commit_reveal"] == 0
    assert _run(capsys, "trigger-epoch", "--url", node.url, "--uri", "//Bob", "--netuid", "5")


def test_wrong_netuid_and_missing_wallet_are_named(node, tmp_path, capsys):
    with pytest.raises(SystemExit, match="subnet 9 does not exist.*--netuid"):
        act("register", ["--url", node.url, "--uri", "//Charlie", "--netuid", "9"])
    with pytest.raises(SystemExit, match="btcli -y wallet create -w ghost -H default"):
        act("register", ["--url", node.url, "-w", "ghost", "--wallet-path", str(tmp_path)])
    with pytest.raises(SystemExit, match="only subnet 1's owner"):
        act("set", ["--url", node.url, "--uri", "//Dave", "tempo=3"])
