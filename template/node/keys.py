"""Loading the node's keys from a btcli wallet, with errors that name the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import StartupError


@dataclass(frozen=True)
class NodeKeys:
    hotkey: object  # a bittensor Keypair (signs uploads, documents, weights, commitments)
    coldkey: object | None = None  # only needed for registration/staking set-up


def load_hotkey(name: str, hotkey: str, path: str) -> NodeKeys:
    """The wallet's hotkey. The coldkey is never loaded by the neurons."""
    check_hotkey_file(name, hotkey, path)
    import bittensor as bt  # heavy: only once the files are known to exist

    try:
        kp = bt.Wallet(name=name, hotkey=hotkey, path=path).hotkey
    except Exception as e:  # noqa: BLE001 - keyfile errors come in several types
        raise StartupError(
            f"could not open hotkey {hotkey!r} of wallet {name!r}: {e}. If it is encrypted, set "
            "the password in the environment as btcli documents, or regenerate the hotkey"
        ) from None
    return NodeKeys(hotkey=kp)


def check_hotkey_file(name: str, hotkey: str, path: str) -> None:
    """StartupError naming the btcli command when the wallet or its hotkey file is missing
    (cheap: the neurons call it before loading torch)."""
    wallet_dir = Path(path).expanduser() / name
    hotkey_file = wallet_dir / "hotkeys" / hotkey
    if not wallet_dir.is_dir():
        raise StartupError(
            f"wallet {name!r} not found under {Path(path).expanduser()}. Create it with "
            f"'btcli wallet create -w {name} -H {hotkey}', or pass --wallet.path"
        )
    if not hotkey_file.is_file():
        raise StartupError(
            f"hotkey {hotkey!r} not found in wallet {name!r} ({hotkey_file}). Create it with "
            f"'btcli wallet new-hotkey -w {name} -H {hotkey}'"
        )
