from pathlib import Path

import pytest

from template.node.errors import StartupError
from template.node.hparams import load_run_hparams

ROOT = Path(__file__).resolve().parents[2]


def test_presets_are_accepted():
    assert load_run_hparams("tiny").outer.method == "sparseloco"


def test_diloco_is_refused_by_a_live_node(tmp_path):
    f = tmp_path / "dense.toml"
    f.write_text('[outer]\nmethod = "diloco"\n')
    with pytest.raises(StartupError, match="runs 'sparseloco'"):
        load_run_hparams(str(f))


def test_bad_file_is_a_startup_error(tmp_path):
    with pytest.raises(StartupError, match="--hparams"):
        load_run_hparams(str(tmp_path / "missing.toml"))


def test_a_32k_vocabulary_needs_a_pinned_tokenizer(tmp_path):
    with pytest.raises(StartupError, match="data.tokenizer is 'byte'"):
        load_run_hparams("1b")
    pinned = tmp_path / "run.toml"
    text = (ROOT / "template/presets/1b.toml").read_text()
    pinned.write_text(text + '\n[data]\ntokenizer = "sha256:' + "0" * 64 + '"\n')
    assert load_run_hparams(str(pinned)).model.vocab_size == 32000
