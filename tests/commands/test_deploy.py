"""deploy/: the compose file and the pm2 file start the real commands with flags they accept,
keep metrics on loopback, give each service its own GPU, and the image's CUDA matches torch's."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from template.miner.args import build_parser as miner_parser
from template.validator.args import build_parser as validator_parser

ROOT = Path(__file__).resolve().parents[2]
PARSERS = {"seed-miner": miner_parser, "seed-validator": validator_parser}


def _expand(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR:-default} / ${VAR:?msg} with ``env``."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        assert op != ":?", f"{name} is required"
        return arg

    return re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", sub, text)


def test_compose_services_are_safe_and_their_commands_parse():
    doc = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    gpus = []
    for name, svc in doc["services"].items():
        for port in svc["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        (dev,) = svc["deploy"]["resources"]["reservations"]["devices"]
        gpus.append(_expand(dev["device_ids"][0], {}))
        argv = shlex.split(_expand(svc["command"], {"NETUID": "3"}))
        args = PARSERS[argv[0]]().parse_args(argv[1:])
        assert args.netuid == 3 and args.metrics_port > 0
    assert len(set(gpus)) == len(gpus) == 2  # one GPU each
    with pytest.raises(AssertionError, match="NETUID"):
        _expand(doc["services"]["miner"]["command"], {})


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js is not installed")
def test_pm2_file_requires_netuid_and_uses_the_cli_state_dir():
    load = "const c = require(process.argv[1]); console.log(JSON.stringify(c.apps));"
    cfg = str(ROOT / "deploy/ecosystem.config.js")
    bare = subprocess.run(["node", "-e", load, cfg], capture_output=True, text=True, env={})
    assert bare.returncode != 0 and "NETUID" in bare.stderr
    proc = subprocess.run(
        ["node", "-e", load, cfg], capture_output=True, text=True, env={"NETUID": "5"}, check=True
    )
    apps = json.loads(proc.stdout)
    devices = set()
    for app in apps:
        assert 2 in app["stop_exit_codes"]  # a configuration error is not restarted
        script = Path(app["script"]).name
        args = PARSERS[script]().parse_args(shlex.split(app["args"]))
        assert args.netuid == 5 and args.state_dir is None  # the CLI's default state folder
        devices.add(args.device)
    assert devices == {"cuda:0", "cuda:1"}


def test_image_cuda_matches_the_torch_build():
    text = (ROOT / "deploy/Dockerfile").read_text()
    image = re.search(r"nvidia/cuda:(\d+)\.(\d+)", text)
    index = re.search(r"download\.pytorch\.org/whl/cu(\d+)", text)
    assert image and index and image.group(1) + image.group(2) == index.group(1)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "deploy/*.env", "runs"} <= set(ignored)
