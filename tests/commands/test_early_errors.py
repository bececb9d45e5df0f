"""Configuration errors come before any heavy import: one line naming the flag, its rule and the
value (or the missing wallet file and the btcli command), exit status 2, torch never loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from template.commands.{module} import main
rc = main({argv!r})
heavy = sorted(m for m in ("torch", "transformers", "bittensor", "boto3") if m in sys.modules)
print(rc, heavy)
"""


def _run(module: str, argv: list[str]) -> tuple[str, str]:
    code = PROBE.format(module=module, argv=argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPLATE_S3_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    return proc.stdout.strip(), proc.stderr.strip()


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("validator", ["--score.alpha", "2"], "validator: --score.alpha must be in (0, 1] (got 2.0)"),
        ("miner", ["--run.max-windows", "-1"], "miner: --run.max-windows must be >= 0 (got -1)"),
        ("miner", ["--device", "gpu"], "miner: --device must be auto, cpu, cuda or cuda:N (got 'gpu')"),
        ("miner", ["--metrics.port", "70000"], "miner: --metrics.port must be in [0, 65535] (got 70000)"),
        ("validator", ["--hparams", "2b"], "validator: --hparams must be a preset"),
        ("miner", ["--wallet.name", "nobody", "--wallet.path", "/nonexistent"],
         "miner: wallet 'nobody' not found under /nonexistent. Create it with 'btcli wallet create"),
        ("localnet", ["--miners", "0"], "localnet: --miners must be >= 1 (got 0)"),
        ("localnet", ["--chain.block-time", "0.01"], "localnet: --chain.block-time must be >= 0.1"),
    ],
)  # fmt: skip
def test_bad_value_exits_2_before_heavy_imports(module, argv, message):
    out, err = _run(module, argv)
    assert out == "2 []", (out, err)
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1


def test_logging_flags_follow_bittensor():
    from template.miner.args import build_parser

    parse = build_parser().parse_args
    assert parse([]).log_level == "INFO"
    assert parse(["--logging.debug"]).log_level == "DEBUG"
    assert parse(["--logging.trace"]).log_level == "TRACE"
    assert parse(["--logging.debug", "--logging.info"]).log_level == "INFO"
    assert parse(["--logging.level", "warning"]).log_level == "WARNING"


def test_incomplete_bucket_settings_exit_2_before_heavy_imports(tmp_path):
    import bittensor as bt

    wallet = bt.Wallet("miner", "default", path=str(tmp_path))
    wallet.create_new_coldkey(use_password=False, suppress=True)
    wallet.create_new_hotkey(use_password=False, suppress=True)
    argv = ["--wallet.name", "miner", "--wallet.path", str(tmp_path), "--device", "cpu"]
    out, err = _run("miner", argv)
    assert out in ("2 []", "2 ['boto3']"), (out, err)  # the storage package loads boto3 (0.3 s)
    assert err.startswith("miner: storage: no bucket: set TEMPLATE_S3_BUCKET"), err
