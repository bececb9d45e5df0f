"""Commands refuse bad input the same way: one line ``prog: message`` on stderr, exit 2."""

from __future__ import annotations

from template.commands import prepare_dataset, train_tokenizer
from template.commands.usage import first_missing, refuse


def test_refuse_prints_one_line_and_returns_2(capsys):
    assert refuse("tool", ValueError("bad --x (got 3)")) == 2
    assert capsys.readouterr().err == "tool: bad --x (got 3)\n"


def test_first_missing(tmp_path):
    (tmp_path / "a").write_text("x")
    assert first_missing([str(tmp_path / "a")]) is None
    assert first_missing([str(tmp_path / "a"), str(tmp_path / "b")]) == str(tmp_path / "b")


def test_corpus_commands_refuse_a_missing_input_and_a_bad_size(tmp_path, capsys):
    gone = str(tmp_path / "gone")
    assert prepare_dataset.main([gone, "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"prepare-dataset: input {gone} does not exist\n"
    assert train_tokenizer.main([gone, "--out", "t", "--vocab-size", "10"]) == 2
    err = capsys.readouterr().err
    assert err == "train-tokenizer: --vocab-size must be in [258, 1048576] (got 10)\n"
    assert train_tokenizer.main([gone, "--out", "t", "--vocab-size", "300"]) == 2
    assert capsys.readouterr().err == f"train-tokenizer: input {gone} does not exist\n"
