"""Every object name the subnet reads or writes. Pure functions; nothing else builds keys.

All names live under ``v{SPEC_VERSION}/``, so an incompatible release never reads the old
layout. Windows are zero-padded to 10 digits so a listing sorts them in order.

    v4/uploads/{window}/{hotkey}            a node's sealed compressed pseudo-gradient for a window
    v4/reveals/{window}/{hotkey}            the key that opens it, published after the cut-off
    v4/peers/{window}.safetensors           the leader's peer list for a window
    v4/aggregates/{window}                  the aggregated update of a window
    v4/fingerprints/{window}.safetensors    the model fingerprint after a window
    v4/verdicts/{window}.safetensors        a validator's verdicts on a window's uploads
    v4/checkpoints/{window}/{file}          a checkpoint's files
    v4/checkpoints/latest.safetensors       signed pointer to the newest checkpoint

A dataset lives under the prefix its owner publishes (``--dataset.prefix``, default
``v1/datasets/default``; ``dataset_prefix`` builds one under ``v{SPEC_VERSION}/``), so a
protocol release does not move the training data:

    {prefix}manifest.json                   a dataset's manifest
    {prefix}{shard}                         its token shards
"""

from __future__ import annotations

import re

from template import SPEC_VERSION

ROOT = f"v{SPEC_VERSION}"
WINDOW_DIGITS = 10
MANIFEST_NAME = "manifest.json"

# Kinds of per-window objects; retention sweeps them by the window in the name.
UPLOADS, REVEALS, PEERS, AGGREGATES, FINGERPRINTS, VERDICTS, CHECKPOINTS = (
    "uploads",
    "reveals",
    "peers",
    "aggregates",
    "fingerprints",
    "verdicts",
    "checkpoints",
)
WINDOWED_KINDS = (UPLOADS, REVEALS, PEERS, AGGREGATES, FINGERPRINTS, VERDICTS, CHECKPOINTS)

_SS58_RE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{40,50}$")  # base58 alphabet, no separators
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # one path segment, no '..' start
_WINDOW_KEY_RE = re.compile(
    rf"^{ROOT}/(?P<kind>{'|'.join(WINDOWED_KINDS)})/(?P<window>\d{{{WINDOW_DIGITS}}})(?:/|\.safetensors$|$)"
)


def _window(window: int) -> str:
    if (
        not isinstance(window, int)
        or isinstance(window, bool)
        or not 0 <= window < 10**WINDOW_DIGITS
    ):
        raise ValueError(f"window must be an int in [0, 1e{WINDOW_DIGITS}), got {window!r}")
    return f"{window:0{WINDOW_DIGITS}d}"


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is one safe path segment (letters, digits, ``._-``), else ValueError."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-' only")
    return name


def check_hotkey(hotkey: str) -> str:
    if not isinstance(hotkey, str) or not _SS58_RE.match(hotkey):
        raise ValueError(f"invalid hotkey {hotkey!r}: expected an ss58 address")
    return hotkey


def upload_key(hotkey: str, window: int) -> str:
    """A node's upload (compressed pseudo-gradient) for ``window``."""
    return f"{ROOT}/{UPLOADS}/{_window(window)}/{check_hotkey(hotkey)}"


def reveal_key(hotkey: str, window: int) -> str:
    """The key that opens a node's sealed upload of ``window`` (published after the cut-off)."""
    return f"{ROOT}/{REVEALS}/{_window(window)}/{check_hotkey(hotkey)}"


def uploads_prefix(window: int) -> str:
    return f"{ROOT}/{UPLOADS}/{_window(window)}/"


def peers_key(window: int) -> str:
    """The leader's peer list for ``window``."""
    return f"{ROOT}/{PEERS}/{_window(window)}.safetensors"


def aggregate_key(window: int) -> str:
    """The aggregated update of ``window``."""
    return f"{ROOT}/{AGGREGATES}/{_window(window)}"


def fingerprint_key(window: int) -> str:
    """The model fingerprint after ``window``'s update."""
    return f"{ROOT}/{FINGERPRINTS}/{_window(window)}.safetensors"


def verdicts_key(window: int) -> str:
    """A validator's verdicts on ``window``'s uploads."""
    return f"{ROOT}/{VERDICTS}/{_window(window)}.safetensors"


def checkpoint_prefix(window: int) -> str:
    return f"{ROOT}/{CHECKPOINTS}/{_window(window)}/"


def checkpoint_key(window: int, name: str = "model.safetensors") -> str:
    """One file of the checkpoint taken at ``window``."""
    return checkpoint_prefix(window) + check_name(name, "checkpoint file name")


def latest_checkpoint_key() -> str:
    """The pointer (small JSON) to the newest checkpoint."""
    return f"{ROOT}/{CHECKPOINTS}/latest.safetensors"  # a signed envelope, like every document


def dataset_prefix(name: str) -> str:
    """The folder of dataset ``name`` (ends with '/')."""
    return f"{ROOT}/datasets/{check_name(name, 'dataset name')}/"


def dataset_manifest_key(prefix: str) -> str:
    return _folder(prefix) + MANIFEST_NAME


def dataset_shard_key(prefix: str, shard_name: str) -> str:
    return _folder(prefix) + check_name(shard_name, "shard name")


def _folder(prefix: str) -> str:
    if not prefix or prefix.startswith("/") or ".." in prefix.split("/"):
        raise ValueError(f"invalid object prefix {prefix!r}")
    return prefix if prefix.endswith("/") else prefix + "/"


def window_of_key(key: str) -> tuple[str, int] | None:
    """``(kind, window)`` of a per-window key of this spec version, else None (e.g. latest.safetensors)."""
    m = _WINDOW_KEY_RE.match(key)
    return (m["kind"], int(m["window"])) if m else None
