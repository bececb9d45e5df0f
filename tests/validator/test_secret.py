"""The sampling secret: private, kept across restarts, and what seeds the validator's samples."""

from __future__ import annotations

import logging
import stat

import pytest

from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.validator.copies import window_salt
from template.validator.measure import control_sequences
from template.validator.secret import SECRET_FILE, load_or_create_secret, write_secret

from .harness import small_hparams


def test_secret_is_made_once_private_and_kept(tmp_path):
    a = load_or_create_secret(tmp_path / "a")
    assert len(a) == 64 and int(a, 16) >= 0
    path = tmp_path / "a" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "a") == a  # a restart keeps its samples
    assert load_or_create_secret(tmp_path / "b") != a  # another validator: other samples


@pytest.mark.parametrize("content", [b"", b"not hex\n", b"ab" * 31 + b"\n", b"\xff\xfe" * 40])
def test_an_unreadable_secret_is_replaced_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / SECRET_FILE
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="template.validator.secret"):
        got = load_or_create_secret(tmp_path)
    assert len(got) == 64 and path.read_text().strip() == got
    assert "making a new one" in caplog.text


def test_write_secret_refuses_what_it_could_not_read_back(tmp_path):
    with pytest.raises(ValueError, match="64 lower-case hex"):
        write_secret(tmp_path / SECRET_FILE, "ABC")


def test_samples_follow_the_secret_not_public_facts(tiny_dataset):
    """What a miner can compute (the validator's hotkey and the window) no longer tells it the
    control sequences or the copy sketches' salt; the secret does, the same on every call."""
    ds = PageDataset(TokenStream(tiny_dataset), small_hparams())
    secret = "0" * 63 + "1"
    pages, _ = control_sequences(ds, 6, 7, secret)
    assert control_sequences(ds, 6, 7, secret)[0] == pages
    other = [control_sequences(ds, 6, 7, s)[0] for s in ("5Gr-hotkey", "f" * 64)]
    assert all(o != pages for o in other)
    assert window_salt(secret, 7) == window_salt(secret, 7) != window_salt("5Gr-hotkey", 7)
