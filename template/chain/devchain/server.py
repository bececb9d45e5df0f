"""The dev chain node: an aiohttp JSON API over the SQLite store plus a block producer.

Reads are plain GETs. Writes are POST /tx/<op> with a JSON body and btauth/1 headers; they
run one at a time (an asyncio lock) and each in one SQLite transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from bittensor.wallets import is_bittensor_address

from ...signing import dev_keypair
from . import rules, store, subnets
from .auth import NONCE_RETENTION_S, authenticate
from .epoch import run_due_epochs
from .errors import DevChainError
from .params import Genesis
from .strict_json import StrictJSONError, loads_strict

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_LONG_POLL_S = 30.0


def _error(code: str, message: str, status: int) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Callable[..., Awaitable]):
    try:
        return await handler(request)
    except DevChainError as e:
        return _error(e.code, e.message, e.status)
    except web.HTTPException as e:
        if e.status >= 400:
            return _error("not_found" if e.status == 404 else "invalid_request", e.reason, e.status)
        raise
    except Exception as e:  # noqa: BLE001 - a bug must not take the node down
        logger.exception("internal error on %s %s", request.method, request.path)
        return _error("internal", f"{type(e).__name__}: {e}", 500)


def _ok_scalar(value, kind) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    return not isinstance(value, int) or -(2**63) <= value < 2**63  # fits SQLite's INTEGER


def _field(body: dict, name: str, kind: type | tuple[type, ...]):
    value = body.get(name)
    if not _ok_scalar(value, kind):
        raise DevChainError("invalid_request", f"field {name!r} missing or not a valid {kind}")
    return value


def _address(body: dict, name: str) -> str:
    value = _field(body, name, str)
    if not is_bittensor_address(value):
        raise DevChainError("invalid_request", f"field {name!r} is not a bittensor ss58 address")
    return value


def _number_list(body: dict, name: str, kind: type | tuple[type, ...]) -> list:
    value = body.get(name)
    if not isinstance(value, list) or not all(_ok_scalar(v, kind) for v in value):
        raise DevChainError("invalid_request", f"field {name!r} must be a list of numbers")
    return value


class DevChainServer:
    """One node: ``await start(host, port)``, then ``await stop()``. State lives in ``db_path``."""

    def __init__(self, db_path: str | Path, genesis: Genesis | None = None, block_time=0.5):
        if block_time < 0.1:
            raise ValueError("block_time must be >= 0.1 s")
        self.block_time = float(block_time)
        self.conn = store.open_db(db_path)
        with store.Tx(self.conn) as c:
            if rules.apply_genesis(c, genesis or Genesis()):
                logger.info("genesis written to %s", db_path)
            else:
                logger.info("resuming %s (genesis flags are ignored on an existing db)", db_path)
            if store.get_meta(c, "node_uri") is None:
                store.set_meta(c, "node_uri", f"//devchain//{secrets.token_hex(8)}")
        self.node_ss58 = dev_keypair(store.get_meta(self.conn, "node_uri")).ss58_address
        self.genesis_netuid = json.loads(store.get_meta(self.conn, "genesis"))["netuid"]
        self.write_lock = asyncio.Lock()
        self.new_block = asyncio.Condition()
        self.app = self._make_app()
        self._runner: web.AppRunner | None = None
        self._producer: asyncio.Task | None = None
        self.port: int | None = None
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._producer = asyncio.create_task(self._produce_blocks())
        logger.info(
            "dev chain on http://%s:%d (block time %.2fs)", host, self.port, self.block_time
        )
        return self.port

    async def stop(self) -> None:
        """Stop producing blocks, release long polls, close the API and the database (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        async with self.new_block:
            self.new_block.notify_all()  # release long-polling /block requests
        if self._producer:
            self._producer.cancel()
            await asyncio.gather(self._producer, return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()
        self.conn.close()

    async def _produce_blocks(self) -> None:
        next_at = time.time() + self.block_time
        while True:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            next_at = max(next_at + self.block_time, time.time())
            async with self.write_lock:
                try:
                    with store.Tx(self.conn) as c:
                        block = rules.produce_block(c, time.time())
                except Exception:  # noqa: BLE001 - log and try again next tick
                    logger.exception("could not write a block")
                    continue
                try:
                    with store.Tx(self.conn) as c:
                        run_due_epochs(c, block)
                except Exception:  # noqa: BLE001 - log and keep producing blocks
                    logger.exception("epoch failed at block %d", block)
            async with self.new_block:
                self.new_block.notify_all()

    # --- routes -------------------------------------------------------------
    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[_errors_as_json], client_max_size=MAX_BODY_BYTES)
        r = app.router
        r.add_get("/info", self.info)
        r.add_get("/block", self.block)
        r.add_get("/blocks", self.blocks)
        r.add_get("/blocks/{n}", self.block_at)
        r.add_get("/balances/{ss58}", self.balance)
        r.add_get("/subnets/{netuid}", self.subnet_info)
        r.add_get("/subnets/{netuid}/metagraph", self.metagraph)
        r.add_get("/subnets/{netuid}/weights", self.weights)
        r.add_get("/subnets/{netuid}/commitments", self.commitments)
        r.add_get("/subnets/{netuid}/reveals", self.reveals)
        r.add_post("/tx/{op}", self.tx)
        return app

    def _netuid(self, request: web.Request) -> int:
        try:
            netuid = int(request.match_info["netuid"])
        except ValueError:
            raise DevChainError("invalid_request", "netuid must be an integer") from None
        if not 0 <= netuid <= 65535:
            raise DevChainError("invalid_request", "netuid must be in 0..65535")
        subnets.subnet(self.conn, netuid)  # not_found if missing
        return netuid

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "node": self.node_ss58,
                "block_time": self.block_time,
                "genesis_netuid": self.genesis_netuid,
                "netuids": subnets.netuids(self.conn),
                "block": store.current_block(self.conn),
            }
        )

    async def block(self, request: web.Request) -> web.Response:
        """Current block; with ``?wait_for=N&timeout=T`` waits (up to 30 s) for block N."""
        try:
            wait_for = int(request.query.get("wait_for", "0"))
            timeout = min(float(request.query.get("timeout", "0")), MAX_LONG_POLL_S)
        except ValueError:
            raise DevChainError("invalid_request", "wait_for/timeout must be numbers") from None
        if not math.isfinite(timeout):
            raise DevChainError("invalid_request", "timeout must be a finite number")
        if store.current_block(self.conn) < wait_for and timeout > 0:
            async with self.new_block:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self.new_block.wait_for(
                            lambda: self._stopping or store.current_block(self.conn) >= wait_for
                        )
        return web.json_response({"block": store.current_block(self.conn)})

    async def blocks(self, request: web.Request) -> web.Response:
        try:
            last = max(1, min(int(request.query.get("last", "20")), 1000))
        except ValueError:
            raise DevChainError("invalid_request", "last must be an integer") from None
        rows = self.conn.execute(
            "SELECT number, timestamp FROM blocks ORDER BY number DESC LIMIT ?", (last,)
        ).fetchall()
        return web.json_response([dict(r) for r in reversed(rows)])

    async def block_at(self, request: web.Request) -> web.Response:
        try:
            n = int(request.match_info["n"])
        except ValueError:
            raise DevChainError("invalid_request", "block number must be an integer") from None
        if not 0 <= n < 2**63:
            raise DevChainError("invalid_request", "block number out of range")
        row = self.conn.execute("SELECT number, timestamp FROM blocks WHERE number=?", (n,))
        row = row.fetchone()
        if row is None:
            raise DevChainError("not_found", f"block {n} does not exist yet")
        return web.json_response(dict(row))

    async def balance(self, request: web.Request) -> web.Response:
        ss58 = request.match_info["ss58"]
        return web.json_response({"coldkey": ss58, "tao": store.balance(self.conn, ss58)})

    async def subnet_info(self, request: web.Request) -> web.Response:
        netuid = self._netuid(request)
        row = subnets.subnet_row(self.conn, netuid)
        _, hp = subnets.subnet(self.conn, netuid)
        return web.json_response(
            {
                "netuid": netuid,
                "owner": row["owner"],
                "owner_hotkey": row["owner_hotkey"],
                "owner_uid": subnets.owner_uid(self.conn, netuid),
                "params": json.loads(hp.to_json()),
                "last_epoch": row["last_epoch"],
                "epoch_index": row["epoch_index"],
                "pending_epoch_at": row["pending_epoch_at"],
            }
        )

    async def metagraph(self, request: web.Request) -> web.Response:
        netuid = self._netuid(request)
        neurons = []
        for r in store.neurons(self.conn, netuid):
            d = dict(r)
            d["coldkey"] = store.owner_of(self.conn, r["hotkey"]) or ""
            d["stake"] = store.hotkey_stake(self.conn, r["hotkey"])
            d["validator_permit"] = bool(r["validator_permit"])
            neurons.append(d)
        block = store.current_block(self.conn)
        return web.json_response({"netuid": netuid, "block": block, "neurons": neurons})

    async def weights(self, request: web.Request) -> web.Response:
        netuid = self._netuid(request)
        rows = self.conn.execute(
            "SELECT src, dst, w FROM weights WHERE netuid=? ORDER BY src, dst", (netuid,)
        ).fetchall()
        return web.json_response([dict(r) for r in rows])

    async def commitments(self, request: web.Request) -> web.Response:
        netuid = self._netuid(request)
        rows = self.conn.execute(
            "SELECT hotkey, data, block FROM commitments WHERE netuid=?", (netuid,)
        ).fetchall()
        return web.json_response(
            {r["hotkey"]: {"data": bytes(r["data"]).hex(), "block": r["block"]} for r in rows}
        )

    async def reveals(self, request: web.Request) -> web.Response:
        """The last reveal outcomes (newest first): why committed weights did or did not land."""
        netuid = self._netuid(request)
        rows = self.conn.execute(
            "SELECT hotkey, commit_block, block, ok, message FROM reveals WHERE netuid=? "
            "ORDER BY rowid DESC LIMIT 200",
            (netuid,),
        ).fetchall()
        return web.json_response([{**dict(r), "ok": bool(r["ok"])} for r in rows])

    # --- writes -------------------------------------------------------------
    async def tx(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        handler = getattr(self, f"_tx_{op}", None)
        if handler is None:
            raise DevChainError("not_found", f"unknown operation {op!r}")
        raw = await request.read()
        signer, nonce = authenticate(
            request.headers, raw, request.method, request.path_qs, self.node_ss58
        )
        try:
            body = loads_strict(raw)
        except StrictJSONError as e:
            raise DevChainError("invalid_request", f"body refused: {e}") from None
        if not isinstance(body, dict):
            raise DevChainError("invalid_request", "body must be a JSON object")
        async with self.write_lock:
            with store.Tx(self.conn) as c:
                if not store.check_and_store_nonce(
                    c, signer, nonce, time.time(), NONCE_RETENTION_S
                ):
                    raise DevChainError("replayed", "this signed request was already accepted")
            with store.Tx(self.conn) as c:
                result = handler(c, signer, body)
        return web.json_response({"ok": True, **result})

    def _tx_transfer(self, c, signer: str, body: dict) -> dict:
        rules.transfer(c, signer, _address(body, "dest"), _field(body, "tao", (int, float)))
        return {"block": store.current_block(c)}

    def _tx_register(self, c, signer: str, body: dict) -> dict:
        netuid, hotkey = _field(body, "netuid", int), _address(body, "hotkey")
        return {"uid": rules.register(c, netuid, signer, hotkey), "block": store.current_block(c)}

    def _tx_add_stake(self, c, signer: str, body: dict) -> dict:
        rules.add_stake(c, signer, _address(body, "hotkey"), _field(body, "tao", (int, float)))
        return {"block": store.current_block(c)}

    def _tx_set_weights(self, c, signer: str, body: dict) -> dict:
        block = rules.set_weights(
            c,
            _field(body, "netuid", int),
            signer,
            _number_list(body, "uids", int),
            [float(w) for w in _number_list(body, "weights", (int, float))],
            _field(body, "version_key", int),
        )
        return {"block": block}

    def _tx_commit(self, c, signer: str, body: dict) -> dict:
        try:
            data = bytes.fromhex(_field(body, "data", str))
        except ValueError:
            raise DevChainError("invalid_request", "field 'data' must be hex") from None
        return {"block": rules.commit(c, _field(body, "netuid", int), signer, data)}

    def _tx_create_subnet(self, c, signer: str, body: dict) -> dict:
        netuid = _field(body, "netuid", int)
        hotkey = _address(body, "owner_hotkey") if "owner_hotkey" in body else None
        rules.create_subnet(c, signer, netuid, _field(body, "params", dict), hotkey)
        return {"netuid": netuid}

    def _tx_trigger_epoch(self, c, signer: str, body: dict) -> dict:
        return {"at": rules.trigger_epoch(c, _field(body, "netuid", int), signer)}

    def _tx_sudo_set(self, c, signer: str, body: dict) -> dict:
        rules.sudo_set(c, _field(body, "netuid", int), signer, _field(body, "params", dict))
        return {}
