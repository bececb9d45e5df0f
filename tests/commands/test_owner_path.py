"""docs/owner.md, step by step, against a dev chain and a local S3: create the subnet, train the
tokenizer, pin it in the run's hparams, prepare and upload the dataset, then a node syncs it and
accepts it, and the trained model exports and generates (the owner's section 8)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from template.commands import export_model, hparams, prepare_dataset, train_tokenizer
from template.commands import upload_dataset as upload_cmd
from template.storage.local_server import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _devchain(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "template.chain.devchain", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_section_2_create_the_subnet_on_the_dev_chain(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "template.chain.devchain", "--port", str(port)]
        + ["--db", str(tmp_path / "owner.sqlite"), "--block-time", "0.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while _devchain("show", "blocks", "--url", url).returncode != 0:
            assert time.monotonic() < deadline, "dev chain did not start"
            time.sleep(0.5)
        made = _devchain(
            "create-subnet", "--url", url, "--uri", "//Alice", "--netuid", "2", "tempo=20",
            "weights_rate_limit=2",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        shown = _devchain("show", "subnet", "--url", url, "--netuid", "2")
        assert shown.returncode == 0 and "tempo" in shown.stdout and "20" in shown.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def _corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    text = CORPUS.read_text()[:150_000] if CORPUS.is_file() else Path(json.__file__).read_text()
    for i in range(3):
        (folder / f"part{i}.txt").write_text(text[i * 50_000 : (i + 1) * 50_000])
    return folder


def _run_toml(tmp_path: Path, pin: str, vocab: int) -> Path:
    """Section 4 on the tiny preset (so the test stays small): copy, pin the tokenizer."""
    text = (ROOT / "template/presets/tiny.toml").read_text()
    text = text.replace("vocab_size = 257", f"vocab_size = {vocab}")
    text = text.replace("[data]\n", f'[data]\ntokenizer = "{pin}"\n')
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_sections_3_to_5_and_8_tokenizer_hparams_dataset_upload_export(tmp_path, capsys):
    from template.hparams import load_hparams
    from template.storage import StorageClient, sync_dataset
    from template.storage.config import BucketConfig
    from template.storage.local_server import start_local_s3
    from template.training.pages import PageDataset
    from template.training.shards import DatasetError, TokenStream

    corpus = _corpus(tmp_path)
    tok = tmp_path / "tokenizer"
    # 3. the tokenizer
    assert train_tokenizer.main([str(corpus), "--vocab-size", "400", "--out", str(tok)]) == 0
    out = capsys.readouterr().out
    pin = out.split('tokenizer = "')[1].split('"')[0]
    assert pin.startswith("sha256:") and (tok / "tokenizer.json").is_file()
    # 4. the run's hparams
    run = _run_toml(tmp_path, pin, 400)
    assert hparams.main([str(run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tokenizer"] == pin and len(info["hparams_hash"]) == 64
    assert hparams.main(["1b"]) == 2  # a 32k preset without a pinned tokenizer is refused
    # 5. prepare (a tokenizer the run does not pin is refused) and upload
    data = tmp_path / "data" / "run1"
    assert prepare_dataset.main([str(corpus), "--tokenizer", "byte", "--hparams", str(run)]
                                + ["--out", str(data)]) == 2  # fmt: skip
    assert prepare_dataset.main([str(corpus), "--tokenizer", str(tok), "--hparams", str(run)]
                                + ["--out", str(data)]) == 0  # fmt: skip
    assert (data / "tokenizer" / "tokenizer.json").is_file()
    s3 = start_local_s3()
    try:
        bucket = BucketConfig(
            s3.endpoint_url, "seed-dataset", "us-east-1", "path",
            LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY,
        )  # fmt: skip
        owner_toml = tmp_path / "owner-dataset.toml"
        owner_toml.write_text(
            f'[storage]\nendpoint_url = "{s3.endpoint_url}"\nbucket = "seed-dataset"\n'
            f'region = "us-east-1"\n[storage.write]\naccess_key_id = "{LOCAL_ACCESS_KEY_ID}"\n'
            f'secret_access_key = "{LOCAL_SECRET_ACCESS_KEY}"\n'
        )

        async def create_and_sync() -> Path:
            async with StorageClient(bucket) as c:
                await c.create_bucket()
            argv = [str(data), "--storage.config", str(owner_toml)]
            assert (
                await asyncio.to_thread(
                    upload_cmd.main, argv + ["--dataset.prefix", "v1/datasets/run1"]
                )
                == 0
            )
            async with StorageClient(bucket) as c:  # a node, with the read key
                got = await c.get_bytes("v1/datasets/run1/tokenizer/tokenizer.json", 1 << 24)
                assert got == (tok / "tokenizer.json").read_bytes()
                return await sync_dataset(c, "v1/datasets/run1", tmp_path / "node-cache")

        folder = asyncio.run(create_and_sync())
    finally:
        s3.stop()
    hp = load_hparams(run)
    assert PageDataset(TokenStream(folder), hp).layout.num_pages > 1  # the node accepts it
    with pytest.raises(DatasetError, match="tokenizer"):
        PageDataset(TokenStream(folder), load_hparams("tiny"))  # another run's node refuses
    # 8. the trained model, exported with the owner's tokenizer
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from template.training.model import build_model

    state = tmp_path / "validator-state"
    state.mkdir()
    model = build_model(hp.model)
    save_file(
        {n: p.detach() for n, p in model.named_parameters()}, str(state / "model.safetensors")
    )
    hf_dir = tmp_path / "seed-tiny"
    argv = [str(state), "--hparams", str(run), "--tokenizer", str(tok), "--out", str(hf_dir)]
    assert export_model.main(argv) == 0
    m = AutoModelForCausalLM.from_pretrained(hf_dir)
    t = AutoTokenizer.from_pretrained(hf_dir)
    ids = t("The king", return_tensors="pt")
    assert m.generate(**ids, max_new_tokens=5, do_sample=False).shape[1] >= ids.input_ids.shape[1]
