"""``seed-train-tokenizer``: train a byte-level BPE tokenizer on the corpus, offline.

seed-train-tokenizer corpus/ --vocab-size 32000 --out tok
# -> tok/tokenizer.json (+ config); prints data.tokenizer = "sha256:<hex>" for the run's hparams

The subnet owner runs this once, prepares the dataset with it (seed-prepare-dataset --tokenizer
tok), publishes both (seed-upload-dataset) and pins the printed name in the run's hparams, so
every node trains on the same tokens. ``--vocab-size`` must equal the preset's model.vocab_size.
"""

from __future__ import annotations

import argparse
import json
import sys

from template.commands.usage import first_missing, refuse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seed-train-tokenizer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="Text files, folders of text, .jsonl or .parquet.")
    p.add_argument("--out", required=True, help="The tokenizer folder to write.")
    p.add_argument("--vocab-size", type=int, required=True, help="Ids in all (incl. end-of-text).")
    p.add_argument("--min-frequency", type=int, default=2, help="Rarest pair merged (default 2).")
    p.add_argument("--text-column", default="text", help="Column of jsonl/parquet holding text.")
    p.add_argument("--json", action="store_true", help="Print the result as one JSON object.")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not 258 <= a.vocab_size <= 1 << 20:
        return refuse(
            "train-tokenizer", f"--vocab-size must be in [258, 1048576] (got {a.vocab_size})"
        )
    if (missing := first_missing(a.inputs)) is not None:
        return refuse("train-tokenizer", f"input {missing} does not exist")
    from template.training.corpus import iter_documents
    from template.training.tokenizer import HFTokenizer, tokenizer_sha256, train_bpe

    folder = train_bpe(
        iter_documents(a.inputs, a.text_column), a.vocab_size, a.out, a.min_frequency
    )
    tok = HFTokenizer(folder)
    result = {
        "out": str(folder),
        "vocab_size": tok.vocab_size,
        "tokenizer": tokenizer_sha256(folder),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"wrote {folder} ({tok.vocab_size} ids); pin it in the run's hparams:")
        print(f'[data]\ntokenizer = "{result["tokenizer"]}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
