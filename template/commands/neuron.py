"""What both neuron commands share: parse, check the flags cheaply, then load torch and run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from template.node.args import resolve_device
from template.node.errors import StartupError
from template.node.flags import ConfigError
from template.node.keys import check_hotkey_file

Run = Callable[[argparse.Namespace], Awaitable[None]]


def run_role(
    role: str,
    build_parser: Callable[[], argparse.ArgumentParser],
    check: Callable[[argparse.Namespace], object],
    load_run: Callable[[], Run],
    argv: list[str] | None = None,
) -> int:
    """Exit 2 with ``role: <flag> <rule> (got <value>)`` (or the missing wallet file and the btcli
    command that makes it, or what the bucket settings lack) before any heavy import; else run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check(args)
        check_hotkey_file(args.wallet_name, args.wallet_hotkey, args.wallet_path)
        check_storage(args.storage_config)
    except (ConfigError, StartupError) as e:
        print(f"{role}: {e}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    if device != args.device:
        argv += ["--device", device]
    from template.node.entry import run_neuron

    return run_neuron(role, lambda: parser, load_run(), argv)


def check_storage(path: str | None) -> None:
    """The node's own bucket settings (file and TEMPLATE_S3_* variables) are complete; boto3 is
    not needed to tell (the bucket itself is probed later, at start-up)."""
    from template.storage.config import load_storage_config
    from template.storage.errors import ConfigError as StorageConfigError

    try:
        load_storage_config(path)
    except StorageConfigError as e:
        raise StartupError(f"storage: {e}") from None
