"""seed-export-model: a run's model becomes a folder stock transformers loads and generates with,
with the same logits as the model the nodes trained; the byte tokenizer is a real HF tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from template.commands.export_model import main
from template.hparams import hparams_hash, load_hparams
from template.training.model import build_model
from template.training.tokenizer import ByteTokenizer, tokenizer_sha256


@pytest.fixture(scope="module")
def trained():
    hp = load_hparams("tiny")
    model = build_model(hp.model)
    with torch.no_grad():  # a "trained" model: anything but the initial weights
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return hp, model


def _params(model):
    return {n: p.detach().contiguous() for n, p in model.named_parameters()}


def _run_folder(tmp_path, model):
    """The layout seed-localnet leaves behind (network.json, nodes/, dataset/)."""
    run = tmp_path / "run"
    state = run / "nodes" / "validator-0"
    state.mkdir(parents=True)
    save_file(_params(model), str(state / "model.safetensors"))
    (run / "network.json").write_text(json.dumps({"hparams": "tiny", "netuid": 1}))
    (run / "dataset").mkdir()
    (run / "dataset" / "manifest.json").write_text(json.dumps({"tokenizer": "byte"}))
    return run


def test_local_run_exports_and_generates_with_stock_transformers(tmp_path, trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hp, model = trained
    out = tmp_path / "hf"
    assert main([str(_run_folder(tmp_path, model)), "--out", str(out)]) == 0
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    hf = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    text = "To be, or not to be: é"
    ids = tok(text, return_tensors="pt").input_ids
    assert ids[0].tolist() == ByteTokenizer().encode(text)  # the nodes' tokenization, exactly
    with torch.no_grad():
        assert torch.equal(hf(ids).logits, model(ids).logits)  # the same model, bit for bit
    gen = hf.generate(ids, max_new_tokens=8, do_sample=False)
    assert gen.shape == (1, ids.shape[1] + 8) or tok.eos_token_id in gen[0].tolist()
    assert isinstance(tok.decode(gen[0]), str) and tok.eos_token_id == 256


def test_signed_checkpoint_of_another_run_is_refused(tmp_path, trained):
    from template.protocol.documents import Checkpoint, encode_checkpoint
    from template.signing import dev_keypair

    hp, model = trained
    blob = encode_checkpoint(
        Checkpoint(3, (0.0,), _params(model), "0" * 64), dev_keypair("//Alice")
    )
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(blob)
    assert main([str(path), "--out", str(tmp_path / "x")]) == 2
    good = encode_checkpoint(
        Checkpoint(3, (0.0,), _params(model), hparams_hash(hp)), dev_keypair("//Alice")
    )
    path.write_bytes(good)
    assert main([str(path), "--out", str(tmp_path / "y")]) == 0


def test_wrong_hparams_and_missing_input_exit_2(tmp_path, trained, capsys):
    _, model = trained
    run = _run_folder(tmp_path, model)
    assert main([str(run), "--hparams", "150m", "--out", str(tmp_path / "z")]) == 2
    assert "does not fit hparams 150m" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "z")]) == 2


def test_byte_tokenizer_round_trips_through_hf(tmp_path):
    from transformers import AutoTokenizer

    folder = ByteTokenizer().save_pretrained(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(folder)
    text = "bytes \x00\x7f\n\t and ü 日本"
    assert tok.encode(text, add_special_tokens=False) == ByteTokenizer().encode(text)
    assert tok.decode(ByteTokenizer().encode(text)) == text
    assert len(tok) == 257 and tokenizer_sha256(folder).startswith("sha256:")
