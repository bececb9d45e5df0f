#!/usr/bin/env python
"""Rewrite the generated flag tables in docs/miner.md and docs/validator.md from the dataclass
fields (their help and rules); tests/commands/test_doc_commands.py fails until this is run."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from template.miner.args import MinerFlags  # noqa: E402
from template.node.flags import flags_table  # noqa: E402
from template.validator.args import ValidatorConfig  # noqa: E402

TABLES = {"docs/miner.md": MinerFlags, "docs/validator.md": ValidatorConfig}


def main() -> int:
    for doc, cls in TABLES.items():
        path = ROOT / doc
        head, rest = path.read_text().split(f"<!-- flags: {cls.__name__} ", 1)
        marker, rest = rest.split("-->\n", 1)
        _, tail = rest.split("<!-- /flags -->", 1)
        text = (
            f"{head}<!-- flags: {cls.__name__} {marker}-->\n{flags_table(cls)}<!-- /flags -->{tail}"
        )
        path.write_text(text)
        print(f"{doc}: {cls.__name__} table rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
