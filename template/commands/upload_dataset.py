"""``seed-upload-dataset``: publish a prepared dataset (and its tokenizer) to the dataset bucket.

seed-upload-dataset data/run1 --storage.config owner-dataset.toml --dataset.prefix v1/datasets/run1

Every shard is checked against the manifest first, uploaded, then the manifest last (a node
that sees the manifest finds every shard). A ``tokenizer/`` folder beside the shards goes to
``<prefix>/tokenizer/``. The storage config is the owner's write key for the dataset bucket
(docs/storage.md format); nodes get a read-only copy (deploy/dataset.toml.example).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from template.commands.usage import refuse
from template.node.flags import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seed-upload-dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="A folder made by seed-prepare-dataset.")
    p.add_argument(
        "--storage.config",
        dest="storage_config",
        required=True,
        help="TOML/JSON with the dataset bucket and its write key (TEMPLATE_S3_* override).",
    )
    p.add_argument(
        "--dataset.prefix",
        dest="dataset_prefix",
        default="v1/datasets/default",
        help="Key prefix the nodes pass as --dataset.prefix (default v1/datasets/default).",
    )
    return p


async def upload(folder: Path, storage_config: str, prefix: str) -> int:
    from template.storage import StorageClient, load_storage_config
    from template.storage.datasets import upload_dataset
    from template.storage.keys import dataset_shard_key

    bucket = load_storage_config(storage_config).write
    async with StorageClient(bucket) as client:
        manifest = await upload_dataset(client, folder, prefix)
        tok = folder / "tokenizer"
        files = sorted(p for p in tok.iterdir() if p.is_file()) if tok.is_dir() else []
        for path in files:
            await client.put_file(
                dataset_shard_key(prefix.rstrip("/") + "/tokenizer", path.name), path
            )
    print(
        f"uploaded {len(manifest.shards)} shard(s) + manifest"
        + (f" + {len(files)} tokenizer file(s)" if files else "")
        + f" to {bucket.bucket}/{prefix}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    folder = Path(a.folder)
    try:
        if not (folder / "manifest.json").is_file():
            raise ConfigError(f"{folder} must be a folder holding manifest.json (got no manifest)")
        if not Path(a.storage_config).is_file():
            raise ConfigError(
                f"--storage.config must be an existing file (got {a.storage_config!r})"
            )
        return asyncio.run(upload(folder, a.storage_config, a.dataset_prefix))
    except Exception as e:  # noqa: BLE001 - one line for the operator, exit 2
        return refuse("upload-dataset", f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main())
