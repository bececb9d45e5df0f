"""A loopback reverse proxy in front of the local S3 server that injects faults.

Runs its own event loop in a thread so tests can flip faults while boto3 threads talk to it.
``proxy.set_fault(Fault(...))`` applies a fault to the next ``times`` matching requests.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import aiohttp
from aiohttp import web

_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
}


@dataclass
class Fault:
    """kind: 'delay' (sleep ``seconds`` then answer), 'status' (answer ``status`` with an S3
    error ``code``), 'truncate' (promise the full Content-Length, send half, close),
    'chunked' (drop Content-Length, send the body chunked, ``pad`` extra bytes appended),
    'trickle' (send the body ``step`` bytes every ``seconds``)."""

    kind: str
    times: int = 1_000_000
    methods: tuple[str, ...] = ("GET", "PUT", "HEAD", "POST", "DELETE")
    seconds: float = 0.0
    status: int = 503
    code: str = "SlowDown"
    pad: int = 0
    step: int = 1


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.fault: Fault | None = None
        self.hits = 0  # requests a fault was applied to
        self.requests = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    # --- control -------------------------------------------------------------
    def set_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self.fault, self.hits = fault, 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- server ---------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._session = self._loop.run_until_complete(self._new_session())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._session.close())
        self._loop.run_until_complete(self._runner.cleanup())

    @staticmethod
    async def _new_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(auto_decompress=False)

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            f = self.fault
            if f is None or method not in f.methods or self.hits >= f.times:
                return None
            self.hits += 1
            return f

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault(request.method)
        body = await request.read()
        if fault and fault.kind == "status":
            xml = f"<Error><Code>{fault.code}</Code><Message>injected</Message></Error>"
            return web.Response(
                status=fault.status, body=xml.encode(), content_type="application/xml"
            )
        if fault and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("connection",)}
        async with self._session.request(
            request.method, self.upstream + request.rel_url.raw_path_qs, headers=headers, data=body
        ) as up:
            payload = await up.read()
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            status = up.status
        if fault is None or fault.kind == "delay" or request.method == "HEAD":
            return web.Response(status=status, headers=out_headers, body=payload)
        resp = web.StreamResponse(status=status, headers=out_headers)
        if fault.kind == "truncate":
            resp.content_length = len(payload)
            await resp.prepare(request)
            await resp.write(payload[: len(payload) // 2])
            request.transport.close()
            return resp
        if fault.kind == "chunked":
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(payload + b"\0" * fault.pad)
            await resp.write_eof()
            return resp
        if fault.kind == "trickle":
            resp.content_length = len(payload)
            await resp.prepare(request)
            for i in range(0, len(payload), fault.step):
                await resp.write(payload[i : i + fault.step])
                await asyncio.sleep(fault.seconds)
            await resp.write_eof()
            return resp
        raise ValueError(f"unknown fault {fault.kind!r}")
