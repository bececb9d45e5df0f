import json
import subprocess
import sys

import pytest

from template.hparams import load_hparams
from template.training.pages import PageDataset, PageLayout, batches
from template.training.shards import DatasetError, TokenStream, parse_manifest
from tests.conftest import ROOT


def test_sampler_is_deterministic_and_never_heldout():
    layout = PageLayout(num_pages=500, num_heldout=25, seed=7)
    a = layout.pages(window=12, uid=3, count=30)
    assert a == PageLayout(500, 25, 7).pages(12, 3, 30)
    assert len(set(a)) == 30
    assert a != layout.pages(13, 3, 30) and a != layout.pages(12, 4, 30)
    for w in range(50):
        for uid in range(8):
            assert not any(layout.is_heldout(p) for p in layout.pages(w, uid, 30))
    held = layout.heldout_pages(5, 10)
    assert all(layout.is_heldout(p) for p in held) and len(set(held)) == 10


def test_pages_and_batches(tiny_dataset):
    hp = load_hparams("tiny")
    ds = PageDataset(TokenStream(tiny_dataset), hp)
    seqs = ds.sequences([0, 1])
    assert seqs.shape == (2 * hp.data.seqs_per_page, hp.model.seq_len + 1)
    # page 1 starts where page 0 ends in the token stream
    assert int(seqs[hp.data.seqs_per_page, 0]) == int(ds.stream.read(hp.page_tokens, 1)[0])
    bs = batches(seqs, 4, 10)
    assert len(bs) == 10 and all(b.shape == (4, hp.model.seq_len + 1) for b in bs)


def test_corrupted_shard_is_detected(tiny_dataset, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(tiny_dataset, copy)
    shard = sorted(copy.glob("shard_*.bin"))[0]
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sha256"):
        TokenStream(copy)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m.update(format="other"), "format"),
        (lambda m: m["shards"][0].update(name="../evil.bin"), "bad shard name"),
        (lambda m: m["shards"][0].update(bytes=3), "disagree"),
        (lambda m: m.update(shards=[]), "no shards"),
    ],
)
def test_manifest_is_strict(tiny_dataset, mutate, message):
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    mutate(m)
    with pytest.raises(DatasetError, match=message):
        parse_manifest(json.dumps(m))


def test_prepare_dataset_inputs(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("hello world")
    (folder / "b.md").write_text("second doc")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"text": "row one"}\n{"text": "row two"}\n')
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": ["pq one", "pq two"]}), parquet)
    out = tmp_path / "out"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/prepare_dataset.py"),
            str(folder),
            str(jsonl),
            str(parquet),
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(res.stdout)
    expected = sum(
        len(s) + 1 for s in ["hello world", "second doc", "row one", "row two", "pq one", "pq two"]
    )
    assert summary["total_tokens"] == expected
    stream = TokenStream(out)
    assert len(stream) == expected
    assert bytes(stream.read(0, 11).tolist()) == b"hello world"


def test_prepare_dataset_bad_jsonl_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "wrong column"}\n')
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/prepare_dataset.py"),
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "no string column 'text'" in res.stderr
