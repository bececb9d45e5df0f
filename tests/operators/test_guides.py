"""The operator guides against the code, without a chain: every btcli line parses with the
btcli the project installs, every dotted flag a guide names exists, each rehearsal block follows
its guide's own steps (same flags, same variables, a stand-in for each btcli step), and the
deployment steps name files, apps and variables the deploy/ files really have."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from template.miner.args import build_parser as miner_parser
from template.node.hparams import load_run_hparams
from template.node.status import MinerStatus, ValidatorStatus, status_keys
from template.validator.args import build_parser as validator_parser

from .guide import ROOT, blocks, commands, first, flags, rehearsal, section, subsection, text

BTCLI = Path(sys.executable).parent / "btcli"
GUIDES = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
# A btcli step of a guide -> what its rehearsal runs instead (None: read-only, nothing to do).
STAND_INS = {
    ("wallet", "create"): "btcli -y wallet create",
    ("wallet", "show"): None,
    ("subnets", "register"): "seed-devchain register",
    ("subnets", "metagraph"): None,
    ("stake", "add"): "seed-devchain stake",
}


def _btcli_lines() -> list[tuple[str, list[str]]]:
    return [
        (doc, argv)
        for doc in GUIDES
        for block in blocks(text(doc))
        for argv in commands(block)
        if argv and argv[0] == "btcli"
    ]


def _placeholders(argv: list[str]) -> list[str]:
    values = {"<NETUID>": "3", "<n>": "3", "<TAO>": "1"}
    return [values.get(a, re.sub(r"<[^>]*>", "x", a)) for a in argv]


@functools.cache
def _btcli():
    """btcli's command tree (bittensor 11; building it takes seconds, so once)."""
    import typer
    from bittensor.cli.main import app

    return typer.main.get_command(app)


def _btcli_check(argv: list[str]) -> None:
    """Parse ``btcli argv`` as btcli itself would, down to its leaf command, without running it:
    an unknown command or option, or a missing required one, raises (its usage error)."""
    cmd = _btcli()
    ctx = cmd.make_context("btcli", list(argv))
    while hasattr(cmd, "resolve_command"):  # a group: on to the subcommand
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)


@pytest.mark.skipif(not BTCLI.is_file(), reason="btcli (bittensor 11) not in this venv")
def test_each_btcli_line_parses():
    for bad in (["walet", "create"], ["stake", "add", "--netuid", "3", "--bogus", "1"],
                ["subnets", "register", "-w", "miner"]):  # fmt: skip
        with pytest.raises(Exception, match="No such|Missing"):
            _btcli_check(bad)  # the check itself can fail
    lines = _btcli_lines()
    assert len(lines) >= 8, lines
    for doc, argv in lines:
        try:
            _btcli_check(_placeholders(argv[1:]))
        except Exception as e:  # noqa: BLE001 - btcli's usage errors
            message = getattr(e, "format_message", lambda e=e: str(e))()
            pytest.fail(f"{doc}: `{' '.join(argv)}` is refused by btcli: {message}")


@pytest.mark.parametrize(
    ("doc", "parser"), [("docs/miner.md", miner_parser), ("docs/validator.md", validator_parser)]
)
def test_every_dotted_flag_named_exists(doc, parser):
    known = set(parser()._option_string_actions)
    named = set(re.findall(r"--[a-z][a-z0-9_-]*\.[a-z][a-z0-9_.-]*[a-z0-9]", text(doc)))
    missing = sorted(named - known - {"--group.name"})
    assert not missing, f"{doc} names flags the command does not have: {missing}"


def _stand_ins_present(doc: str, guide_blocks: list[str]) -> None:
    block = rehearsal(doc)
    for guide_block in guide_blocks:
        for argv in commands(guide_block):
            if not argv or argv[0] != "btcli":
                continue
            step = tuple(a for a in argv[1:] if not a.startswith("-"))[:2]
            assert step in STAND_INS, f"{doc}: btcli {step} has no stand-in in STAND_INS"
            if STAND_INS[step]:
                assert STAND_INS[step] in block, f"{doc}: the rehearsal skips btcli {step}"


def test_the_validator_rehearsal_follows_sections_2_to_4():
    doc = "docs/validator.md"
    block = rehearsal(doc)
    _stand_ins_present(doc, blocks(section(doc, 2)))
    start = blocks(section(doc, 4))[0]
    documented = flags(first(start, "seed-validator"))
    rehearsed = flags(first(block, "seed-validator"))
    assert documented <= rehearsed, f"the rehearsal drops {sorted(documented - rehearsed)}"
    exported = {w.split("=")[0] for a in commands(block) if a[0] == "export" for w in a[1:]}
    (keys,) = blocks(section(doc, 3))
    documented_vars = set(re.findall(r"TEMPLATE_S3_\w+", keys)) - {"TEMPLATE_S3_R2_ACCOUNT_ID"}
    assert documented_vars <= exported and "TEMPLATE_S3_ENDPOINT_URL" in exported
    assert "deploy/dataset.toml.example" in block  # the documented dataset.toml format


def test_the_miner_rehearsal_follows_sections_2_to_6():
    doc = "docs/miner.md"
    block = rehearsal(doc)
    _stand_ins_present(doc, blocks(section(doc, 2)) + blocks(section(doc, 3)))
    start = blocks(section(doc, 6))[0]
    documented = flags(first(start, "seed-miner"))
    rehearsed = flags(first(block, "seed-miner"))
    assert documented <= rehearsed, f"the rehearsal drops {sorted(documented - rehearsed)}"


def _deploy_steps(doc: str, number: int) -> list[list[str]]:
    return [argv for b in blocks(section(doc, number)) for argv in commands(b)]


@pytest.mark.parametrize(("doc", "number", "role"), [
    ("docs/miner.md", 7, "miner"), ("docs/validator.md", 5, "validator"),
])  # fmt: skip
def test_deploy_steps_name_real_files_apps_and_variables(doc, number, role, tmp_path):
    steps = _deploy_steps(doc, number)
    pm2 = (ROOT / "deploy/ecosystem.config.js").read_text()
    compose = (ROOT / "deploy/docker-compose.yml").read_text()
    copied = set()
    for argv in steps:
        if argv[0] == "cp":
            src, dest = argv[1], argv[2]
            assert not src.startswith("deploy/") or (ROOT / src).is_file(), f"{doc}: no {src}"
            copied.add(dest)
        env = [a.split("=")[0] for a in argv if re.fullmatch(r"[A-Z_]+=\S*", a)]
        for value in [a.split("=", 1)[1] for a in argv if a.startswith("HPARAMS=")]:
            load_run_hparams(value)  # a preset the nodes refuse (32k without a tokenizer) fails
        if "pm2" in argv and "start" in argv:
            assert argv[argv.index("--only") + 1] == role
            for name in env:
                assert f"process.env.{name}" in pm2, f"{doc}: pm2 ignores {name}"
        if "compose" in argv and "up" in argv:
            assert re.search(rf"^  {role}:$", compose, flags=re.M)
            for name in env:
                assert "${" + name in compose, f"{doc}: compose ignores {name}"
    assert {f"deploy/{role}.env", "deploy/dataset.toml", "deploy/run.toml"} <= copied
    if shutil.which("node") is None:
        return
    load = "const c = require(process.argv[1]); console.log(JSON.stringify(c.apps));"
    cfg = str(ROOT / "deploy/ecosystem.config.js")
    proc = subprocess.run(
        ["node", "-e", load, cfg], capture_output=True, text=True, env={"NETUID": "3"}, check=True
    )
    (app,) = [a for a in json.loads(proc.stdout) if a["name"] == role]
    argv = app["args"].split()
    parsed = (miner_parser if role == "miner" else validator_parser)().parse_args(argv)
    for path in (parsed.hparams, parsed.dataset_bucket_config):  # the files the guide copies
        assert Path(path).relative_to(ROOT).as_posix() in copied, f"pm2 reads {path}"


@pytest.mark.parametrize(
    ("doc", "kind"), [("docs/miner.md", MinerStatus), ("docs/validator.md", ValidatorStatus)]
)
def test_status_json_keys_are_the_documented_ones(doc, kind):
    """The guide's status.json list is the status dataclass's fields, no more, no fewer."""
    documented = set(re.findall(r"`([a-z_]+)`", subsection(doc, "status.json"))) - {"cat"}
    keys = set(status_keys(kind)) | {"updated_at"}
    assert documented == keys, f"{doc}: missing {keys - documented}, stale {documented - keys}"


@pytest.mark.parametrize("doc", GUIDES)
def test_every_relative_link_names_a_file_that_exists(doc):
    """A guide's links to other guides, raw figures and images (``](path)``, not web addresses
    or in-page anchors) resolve from the guide's own folder: moving a page breaks no link."""
    path = ROOT / doc
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text(doc))
    broken = [t for t in links if "://" not in t and not (path.parent / t).exists()]
    assert not broken, f"{doc} links to missing files: {broken}"
