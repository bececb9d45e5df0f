#!/usr/bin/env python
"""Turn text into token shards plus a manifest (token counts, sha256 per shard).

python scripts/prepare_dataset.py ../shared/data/tinyshakespeare.txt --out data/shakespeare
python scripts/prepare_dataset.py corpus/ rows.jsonl --tokenizer ./my_tokenizer --out data/run1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from template.training.corpus import iter_documents  # noqa: E402
from template.training.shards import write_shards  # noqa: E402
from template.training.tokenizer import load_tokenizer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "inputs", nargs="+", help="text files, folders of text, .jsonl or .parquet files"
    )
    p.add_argument("--out", required=True, help="output folder for shard_*.bin and manifest.json")
    p.add_argument(
        "--tokenizer",
        default="byte",
        help="'byte' (default, no files) or a local HF tokenizer folder",
    )
    p.add_argument("--text-column", default="text", help="column holding the text in jsonl/parquet")
    p.add_argument("--shard-tokens", type=int, default=1 << 24, help="tokens per shard")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    tok = load_tokenizer(args.tokenizer)
    docs = (
        tok.encode(text) + [tok.eot_id] for text in iter_documents(args.inputs, args.text_column)
    )
    manifest = write_shards(
        docs,
        Path(args.out),
        vocab_size=tok.vocab_size,
        tokenizer=tok.name,
        shard_tokens=args.shard_tokens,
    )
    summary = {
        "out": args.out,
        "shards": len(manifest.shards),
        "total_tokens": manifest.total_tokens,
        "tokenizer": manifest.tokenizer,
        "vocab_size": manifest.vocab_size,
    }
    print(
        json.dumps(summary)
        if args.json
        else f"wrote {summary['shards']} shard(s), {summary['total_tokens']} tokens to {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
