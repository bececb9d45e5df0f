"""``seed-prepare-dataset``: text -> token shards + manifest (token counts, sha256 per shard).

seed-prepare-dataset ../shared/data/tinyshakespeare.txt --out data/shakespeare
seed-prepare-dataset corpus/ rows.jsonl --tokenizer ./tok --hparams run.toml --out data/run1

With an HF tokenizer folder the dataset carries a copy of it (``<out>/tokenizer/``), and the
manifest names it by ``sha256:<hex of tokenizer.json>``; ``--hparams`` checks that name against
the run's pinned ``data.tokenizer`` before any text is read.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from template.commands.usage import first_missing, refuse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seed-prepare-dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="Text files, folders of text, .jsonl or .parquet.")
    p.add_argument("--out", required=True, help="Output folder for shard_*.bin and manifest.json.")
    p.add_argument(
        "--tokenizer", default="byte", help="byte (default, no files) or a tokenizer folder."
    )
    p.add_argument("--hparams", default=None, help="Check the tokenizer against this run's pin.")
    p.add_argument("--text-column", default="text", help="Column of jsonl/parquet holding text.")
    p.add_argument("--shard-tokens", type=int, default=1 << 24, help="Tokens per shard.")
    p.add_argument("--json", action="store_true", help="Print the summary as one JSON object.")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.shard_tokens < 1:
        return refuse("prepare-dataset", f"--shard-tokens must be >= 1 (got {args.shard_tokens})")
    if (missing := first_missing(args.inputs)) is not None:
        return refuse("prepare-dataset", f"input {missing} does not exist")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from template.hparams import HParamsError, load_hparams
    from template.training.corpus import iter_documents
    from template.training.shards import write_shards
    from template.training.tokenizer import load_tokenizer

    try:
        tok = load_tokenizer(args.tokenizer)
        if args.hparams:
            pin = load_hparams(args.hparams).data.tokenizer
            if tok.name != pin:
                raise ValueError(f"tokenizer {tok.name} is not the run's data.tokenizer {pin}")
    except (FileNotFoundError, HParamsError, ValueError) as e:
        return refuse("prepare-dataset", e)
    out = Path(args.out)
    docs = (tok.encode(t) + [tok.eot_id] for t in iter_documents(args.inputs, args.text_column))
    manifest = write_shards(
        docs, out, vocab_size=tok.vocab_size, tokenizer=tok.name, shard_tokens=args.shard_tokens
    )
    if args.tokenizer != "byte":
        shutil.copytree(args.tokenizer, out / "tokenizer", dirs_exist_ok=True)
    summary = {
        "out": str(out),
        "shards": len(manifest.shards),
        "total_tokens": manifest.total_tokens,
        "tokenizer": manifest.tokenizer,
        "vocab_size": manifest.vocab_size,
    }
    print(
        json.dumps(summary)
        if args.json
        else f"wrote {summary['shards']} shard(s), {summary['total_tokens']} tokens to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
