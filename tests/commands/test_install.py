"""CI check: a fresh virtual environment installs the package with one command
(``pip install .[localnet]``) and every console script starts (``--help``, exit 0), run from
outside the checkout so only the installed wheel is importable.

It stays offline and quick: the fresh venv sees this environment's already installed
dependencies through a .pth file, so pip resolves the declared ranges against the tested
versions (``--no-index``: nothing is downloaded) and builds only this project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "template", src / "template", ignore=shutil.ignore_patterns("__pycache__")
    )
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir)}))
    (site / "_tested_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    cmd = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install"]
    cmd += ["-q", "--no-index", "--no-build-isolation", f"{src}[localnet]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return env_dir


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_script_starts(venv, script, tmp_path):
    exe = venv / "bin" / script
    assert exe.is_file(), f"{script} was not installed"
    proc = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_installed_package_is_the_wheel_and_checks_flags_first(venv, tmp_path):
    code = "import template, sys; print(template.__file__)"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert str(venv) in where, where  # not the checkout
    proc = subprocess.run(
        [str(venv / "bin" / "seed-validator"), "--score.alpha", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_env(),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "validator: --score.alpha must be in (0, 1] (got 0.0)"
