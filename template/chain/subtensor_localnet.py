"""Set up a subnet on a subtensor localnet (the docker image) with the bittensor SDK.

Used by ``scripts/subtensor_localnet_setup.py`` and the real-node e2e test. On the localnet
``//Alice`` holds the sudo key and a large balance, so she creates the subnet, relaxes the
hyperparameters that would slow a test down (commit-reveal, weights rate limit, start-call
delay, long tempo) and funds the other accounts. Commit-reveal is turned off: the drand pallet
fetches its pulses over HTTP, and on a machine without internet timelocked commits would never
be revealed (and a test would wait a reveal period per weight change); the
commit-reveal path is exercised against the strict fake Substrate instead
(tests/chain/test_subtensor_strict.py), and validators verify their weights after the reveal
delay on any chain.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import bittensor as bt

from .errors import ChainError
from .subtensor_errors import raise_for_result

logger = logging.getLogger(__name__)

RAO_PER_TAO = 10**9


@dataclass(frozen=True)
class LocalnetSubnetConfig:
    """Hyperparameters applied (as sudo) to the fresh subnet."""

    tempo: int = 10
    weights_rate_limit: int = 0
    commit_reveal: bool = False
    min_allowed_weights: int = 1
    stake_threshold_rao: int = 0


async def sudo(client: bt.Client, sudo_key: Any, call: Any, action: str) -> None:
    """Dispatch ``call`` with root origin through ``Sudo.sudo`` (signed by the sudo key)."""
    inner = await client.compose(call)
    result = await client.submit_call(bt.calls.Sudo.sudo(call=inner), sudo_key)
    raise_for_result(result, f"sudo {action}")


async def try_sudo(client: bt.Client, sudo_key: Any, call: Any, action: str) -> bool:
    """Like :func:`sudo` but only logs a failure (for settings an older runtime may lack)."""
    try:
        await sudo(client, sudo_key, call, action)
        return True
    except (ChainError, bt.BittensorError) as error:
        logger.warning("sudo %s failed (continuing): %s", action, error)
        return False


async def fund(client: bt.Client, source: Any, dest_ss58: str, tao: float) -> None:
    """Transfer ``tao`` from ``source`` (a coldkey keypair) to ``dest_ss58``."""
    call = bt.calls.Balances.transfer_keep_alive(dest=dest_ss58, value=int(tao * RAO_PER_TAO))
    raise_for_result(await client.submit_call(call, source), f"fund {dest_ss58}")


async def create_subnet(
    client: bt.Client, owner_coldkey: Any, owner_hotkey_ss58: str, *, timeout: float = 120.0
) -> int:
    """Register a new subnet owned by ``owner_coldkey``, activate it, and return its netuid."""
    result = await client.execute(
        bt.RegisterSubnet(hotkey_ss58=owner_hotkey_ss58),
        owner_coldkey,
        registration_timeout=timeout,
    )
    raise_for_result(result, "register subnet")
    netuid = int(result.data["netuid"])
    deadline = time.monotonic() + timeout
    while True:  # start_call is refused until StartCallDelay blocks have passed
        started = await client.execute(bt.StartCall(netuid=netuid), owner_coldkey)
        if started.success:
            break
        if time.monotonic() > deadline:
            raise_for_result(started, f"start subnet {netuid}")
        logger.info(
            "start_call on subnet %d not yet allowed (%s); waiting", netuid, started.message
        )
        await asyncio.sleep(max(1.0, await client.block_time()))
    logger.info("subnet %d registered and started", netuid)
    return netuid


async def configure_subnet(
    client: bt.Client, sudo_key: Any, netuid: int, config: LocalnetSubnetConfig
) -> None:
    """Apply ``config`` to subnet ``netuid`` with root origin."""
    admin = bt.calls.AdminUtils
    await sudo(
        client,
        sudo_key,
        admin.sudo_set_commit_reveal_weights_enabled(netuid=netuid, enabled=config.commit_reveal),
        "commit_reveal",
    )
    await sudo(
        client,
        sudo_key,
        admin.sudo_set_weights_set_rate_limit(
            netuid=netuid, weights_set_rate_limit=config.weights_rate_limit
        ),
        "weights_set_rate_limit",
    )
    await sudo(client, sudo_key, admin.sudo_set_tempo(netuid=netuid, tempo=config.tempo), "tempo")
    await try_sudo(
        client,
        sudo_key,
        admin.sudo_set_min_allowed_weights(
            netuid=netuid, min_allowed_weights=config.min_allowed_weights
        ),
        "min_allowed_weights",
    )
    await try_sudo(
        client,
        sudo_key,
        admin.sudo_set_network_registration_allowed(netuid=netuid, registration_allowed=True),
        "network_registration_allowed",
    )
    await try_sudo(
        client,
        sudo_key,
        admin.sudo_set_stake_threshold(min_stake=config.stake_threshold_rao),
        "stake_threshold",
    )


async def prepare_subnet(
    client: bt.Client,
    sudo_key: Any,
    owner_hotkey_ss58: str,
    config: LocalnetSubnetConfig | None = None,
) -> int:
    """Create, start and configure a fresh subnet owned by (and administered as) ``sudo_key``."""
    config = config or LocalnetSubnetConfig()
    admin = bt.calls.AdminUtils
    await try_sudo(client, sudo_key, admin.sudo_set_start_call_delay(delay=0), "start_call_delay")
    await try_sudo(client, sudo_key, admin.sudo_set_network_rate_limit(rate_limit=0), "net limit")
    netuid = await create_subnet(client, sudo_key, owner_hotkey_ss58)
    await configure_subnet(client, sudo_key, netuid, config)
    return netuid
