import pytest

from template import SPEC_VERSION
from template.storage import keys

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def test_keys_are_versioned_and_windowed():
    assert keys.upload_key(HOTKEY, 42) == f"v{SPEC_VERSION}/uploads/0000000042/{HOTKEY}"
    assert keys.reveal_key(HOTKEY, 42) == f"v{SPEC_VERSION}/reveals/0000000042/{HOTKEY}"
    assert keys.peers_key(7).startswith(f"v{SPEC_VERSION}/peers/")
    for k in (
        keys.upload_key(HOTKEY, 42),
        keys.reveal_key(HOTKEY, 42),
        keys.peers_key(42),
        keys.aggregate_key(42),
        keys.fingerprint_key(42),
        keys.verdicts_key(42),
        keys.checkpoint_key(42),
    ):
        assert k.startswith(keys.ROOT + "/")
        assert keys.window_of_key(k)[1] == 42
    assert keys.window_of_key(keys.latest_checkpoint_key()) is None
    assert keys.window_of_key(keys.dataset_manifest_key(keys.dataset_prefix("fineweb"))) is None
    assert keys.window_of_key("v999/uploads/0000000001/x") is None


def test_window_order_is_lexical():
    assert keys.aggregate_key(9) < keys.aggregate_key(10) < keys.aggregate_key(100)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 200, ".hidden"])
def test_names_reject_path_tricks(bad):
    with pytest.raises(ValueError):
        keys.checkpoint_key(1, bad)
    with pytest.raises(ValueError):
        keys.dataset_prefix(bad)


@pytest.mark.parametrize("bad", ["../../etc", "5Grw/../x", "", "0" * 48])
def test_bad_hotkeys_rejected(bad):
    with pytest.raises(ValueError):
        keys.upload_key(bad, 1)


@pytest.mark.parametrize("bad", [-1, 10**10, 1.5, True, "3"])
def test_bad_windows_rejected(bad):
    with pytest.raises(ValueError):
        keys.peers_key(bad)
