"""Every ``seed-*`` command line in the guides (README, owner, miner, validator, localnet) is
accepted by that command's parser as written, and every validator/miner flag is documented:
the docs cannot drift from the flags."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

from template.miner.args import MinerFlags
from template.node.flags import flags_table
from template.validator.args import ValidatorConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/owner.md", "docs/miner.md", "docs/validator.md", "docs/localnet.md"]
MODULES = {
    "seed-miner": "miner",
    "seed-validator": "validator",
    "seed-localnet": "localnet",
    "seed-prepare-dataset": "prepare_dataset",
    "seed-train-tokenizer": "train_tokenizer",
    "seed-upload-dataset": "upload_dataset",
    "seed-export-model": "export_model",
    "seed-min-compute": "min_compute",
    "seed-hparams": "hparams",
}


def _commands() -> list[tuple[str, str]]:
    """(doc, command line) for each seed-* command in a code block (continuations joined)."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip().removeprefix(".venv/bin/")
            name = line.split(" ", 1)[0]
            if name in MODULES and not line.startswith(f"{name} node "):
                line = re.sub(r"\s+#.*$", "", line).rstrip(" &")
                found.append((doc, line))
    return found


def _parser(name: str) -> argparse.ArgumentParser:
    mod = importlib.import_module(f"template.commands.{MODULES[name]}")
    if hasattr(mod, "build_parser"):
        return mod.build_parser()
    return importlib.import_module(mod.build_parser.__module__).build_parser()


@pytest.mark.parametrize(("doc", "line"), _commands())
def test_documented_command_parses(doc, line):
    line = re.sub(r"<NETUID>|<n>", "3", line)
    line = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", line)  # ${VAR:-default}: the default
    argv = [re.sub(r"<[^>]*>", "x", a) for a in shlex.split(line)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            _parser(argv[0]).parse_args(argv[1:])
        except SystemExit as e:
            if e.code == 0:  # --help
                return
            pytest.fail(f"{doc}: `{line}` is refused: {err.getvalue().strip()} ({e.code})")


def test_the_guides_show_each_command():
    names = {line.split()[0] for _, line in _commands()}
    assert {"seed-miner", "seed-validator", "seed-localnet", "seed-export-model"} <= names
    assert {"seed-train-tokenizer", "seed-prepare-dataset", "seed-upload-dataset"} <= names


@pytest.mark.parametrize(
    ("doc", "cls"), [("docs/miner.md", MinerFlags), ("docs/validator.md", ValidatorConfig)]
)
def test_flag_tables_are_generated_from_the_fields(doc, cls):
    """The docs' flag table is the fields' own help and rule (regenerate with flags_table)."""
    text = (ROOT / doc).read_text()
    marker = f"<!-- flags: {cls.__name__} "
    assert marker in text, f"{doc} has no generated flag table for {cls.__name__}"
    block = text.split(marker, 1)[1].split("-->\n", 1)[1].split("<!-- /flags -->", 1)[0]
    assert block == flags_table(cls), (
        f"{doc}: the {cls.__name__} table is stale: run python scripts/doc_flags.py"
    )
