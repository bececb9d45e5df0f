"""``seed-hparams``: check a run's hyperparameters file and print what nodes must agree on.

seed-hparams run.toml          # name, sha256 hash, tokenizer pin, parameter count (one JSON line)

The subnet owner publishes the file and this hash; every node of the run passes the same file
as ``--hparams`` (uploads carry the hash, and peers with another hash are not mixed in).
"""

from __future__ import annotations

import argparse
import json
import sys

from template.commands.usage import refuse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seed-hparams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("hparams", help="A preset (tiny, 150m, 1b, 8b) or a TOML file.")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from template.hparams import hparams_hash
    from template.node.errors import StartupError
    from template.node.hparams import load_run_hparams
    from template.training.requirements import param_count

    try:
        hp = load_run_hparams(a.hparams)  # the check every neuron makes at start-up
    except StartupError as e:
        return refuse("hparams", e)
    info = {
        "name": hp.name,
        "hparams_hash": hparams_hash(hp),
        "tokenizer": hp.data.tokenizer,
        "vocab_size": hp.model.vocab_size,
        "params": param_count(hp),
        "outer": hp.outer.method,
    }
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
