"""Start-up checks name the fix; the entry point prints one line and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from template.node.errors import StartupError
from template.signing import dev_keypair
from template.storage import decode_commitment
from template.validator import ValidatorConfig
from template.validator.startup import prepare_validator

from .harness import running_subnet, small_hparams

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
async def test_unregistered_and_unpermitted_validators_are_refused(tmp_path, tiny_dataset):
    async with running_subnet(tmp_path, tiny_dataset, block_time=0.1, tempo=3) as net:
        net.vkeys["ghost"] = dev_keypair("//Alice//ghost")
        with pytest.raises(StartupError, match="btcli subnets register"):
            await net.start_validator("ghost")
        await net.add_validator_key("poor", 0.0)  # registered, no stake: no permit
        with pytest.raises(StartupError, match="btcli stake add"):
            await net.start_validator("poor")
        # the commitment was published before the permit check, and decodes to the bucket
        c = await net.chain.client(net.alice)
        got = (await c.commitments())[net.vkeys["poor"].ss58_address]
        assert decode_commitment(got, allow_private=True).bucket == net.bucket("poor").bucket


def test_entry_point_prints_one_line_and_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "neurons" / "validator.py"), "--wallet.path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("validator: wallet") and "btcli wallet create" in lines[-1]
    assert "Traceback" not in proc.stderr


async def test_a_state_dir_that_cannot_keep_the_secret_stops_start_up_first(tmp_path):
    """Before any chain call: a validator whose samples would not survive a restart (or
    could not be drawn) says which folder to fix."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be")

    class NoChain:
        def __getattr__(self, name):
            raise AssertionError(f"the chain was used ({name}) before the state dir was checked")

    with pytest.raises(StartupError, match="sampling secret .* --state.dir"):
        await prepare_validator(
            chain=NoChain(),
            key=dev_keypair("//Alice//v"),
            storage=None,
            hp=small_hparams(),
            dataset=None,
            cfg=ValidatorConfig(),
            state_dir=blocker / "validator",
        )
