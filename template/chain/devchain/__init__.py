"""The embedded dev chain: a small local node (aiohttp + SQLite) that follows subtensor's subnet
rules and runs Yuma consensus each tempo. See docs/devchain.md."""

from .client import DevChainClient
from .params import DEV_ACCOUNTS, Genesis, SubnetHyperparams

__all__ = ["DEV_ACCOUNTS", "DevChainClient", "Genesis", "SubnetHyperparams"]
