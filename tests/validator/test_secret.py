"""The sampling secret: private, kept across restarts, and what seeds the validator's samples."""

from __future__ import annotations

import logging
import stat
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from template.training.pages import PageDataset
from template.training.shards import TokenStream
from template.validator.copies import window_salt
from template.validator.measure import control_sequences, own_sequences
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


def test_without_the_secret_no_part_of_the_work_is_safe_to_skip(tiny_dataset):
    """Over many secrets, every sequence of an upload's pages is read about equally often, and
    control pages fall evenly over the training pages, never on a claimed page: a miner that
    does not know the secret cannot find sequences the validator will not check, nor pages it
    would compare against."""
    ds = PageDataset(TokenStream(tiny_dataset), small_hparams())
    spp, n = ds.seqs_per_page, ds.layout.num_train
    claimed = tuple(range(40, 46))
    upload = SimpleNamespace(uid=3, pages=claimed)  # own_sequences reads the uid and pages
    secrets = [f"{i:064x}" for i in range(600)]
    own = Counter()
    bins = Counter()
    for secret in secrets:
        pages, rows = own_sequences(ds, upload, 3, 7, secret)
        assert len(set(pages)) == 3 and set(pages) <= set(claimed)
        for p, row in zip(pages, rows, strict=True):
            index = [bool(torch.equal(row, seq)) for seq in ds.page(p)].index(True)
            own[(p, index)] += 1
        control, _ = control_sequences(ds, 6, 7, secret, exclude=claimed)
        assert not set(control) & set(claimed) and len(set(control)) == 6
        bins.update(10 * p // n for p in control)
    expected = len(secrets) * 3 / (len(claimed) * spp)  # 150: binomial SD about 10.6
    assert len(own) == len(claimed) * spp
    assert all(expected / 1.5 < c < expected * 1.5 for c in own.values()), own
    per_bin = len(secrets) * 6 / 10  # 360: SD about 18
    assert sorted(bins) == list(range(10))
    assert all(per_bin / 1.5 < c < per_bin * 1.5 for c in bins.values()), bins
