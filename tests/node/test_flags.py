"""Settings dataclasses become argparse flags whose --help always renders."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from template.miner.args import MinerFlags
from template.node.flags import add_settings, setting
from template.validator.args import ValidatorConfig


@dataclass
class _Percent:
    share: float = setting(0.5, "Share of windows (50% by default).")
    strict: bool = setting(False, "Refuse 100% of doubtful uploads.")


def test_a_percent_sign_in_help_renders_as_written():
    parser = argparse.ArgumentParser()
    add_settings(parser, _Percent, "percent")
    text = " ".join(parser.format_help().split())
    assert "(50% by default)" in text and "Refuse 100% of" in text


def test_every_node_flag_renders_in_help():
    for cls in (ValidatorConfig, MinerFlags):
        parser = argparse.ArgumentParser()
        add_settings(parser, cls, cls.__name__)
        assert parser.format_help()  # argparse raises on a malformed help string
