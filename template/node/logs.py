"""Logging for the neurons: one line per record, to stderr (pm2/docker/localnet capture it).

Flags follow bittensor: ``--logging.debug``, ``--logging.trace``, ``--logging.info`` or
``--logging.level LEVEL``. TRACE (level 5) is below DEBUG and also shows the libraries' chatter.
"""

from __future__ import annotations

import argparse
import logging

TRACE = 5
LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
_NOISY = ("botocore", "boto3", "urllib3", "s3transfer", "aiohttp.access", "bittensor")


def add_logging_args(parser: argparse.ArgumentParser) -> None:
    """The logging flags; the parsed level lands in ``args.log_level``."""
    g = parser.add_argument_group("logging")
    g.add_argument(
        "--logging.level",
        dest="log_level",
        default="INFO",
        type=str.upper,
        choices=LEVELS,
        help="Log level (default INFO).",
    )
    for level in ("trace", "debug", "info"):
        g.add_argument(
            f"--logging.{level}",
            dest="log_level",
            action="store_const",
            const=level.upper(),
            help=f"Same as --logging.level {level.upper()}.",
        )


def setup_logging(level: str = "INFO") -> None:
    logging.addLevelName(TRACE, "TRACE")
    name = level.upper()
    value = TRACE if name == "TRACE" else getattr(logging, name, logging.INFO)
    logging.basicConfig(level=value, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    quiet = logging.DEBUG if value <= TRACE else max(logging.WARNING, value)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(quiet)
