import pytest

from template.node.errors import StartupError
from template.node.hparams import load_run_hparams


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
