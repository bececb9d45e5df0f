"""moto's S3 server with a write journal, so a local subnet's buckets survive an S3 restart.

moto keeps every bucket in memory. This launcher wraps its WSGI app: every successful
request that changes state (PUT, POST, DELETE) is appended to a JSON-lines journal (method,
path, query, headers, body in base64), one locked write per request. At start-up the journal
is replayed into the fresh in-memory server BEFORE the port opens, so once the endpoint answers
it holds every bucket and object it held when it stopped (or was killed: a request is in the
journal once its response was sent). A torn last line (killed mid-write) is skipped.

    python -m template.storage.persistent_s3 --port 9000 --journal runs/x/s3-journal.jsonl

Limits: a multipart upload is not replayed (moto gives a new upload id); the local subnet's
objects are far below the multipart threshold. ``/moto-api/reset`` empties the journal.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

WRITE_METHODS = ("PUT", "POST", "DELETE")
_SKIP_HEADERS = {"content-length", "host", "transfer-encoding", "connection"}


class Journal:
    """Append-only JSON lines, one complete line per write (safe across server threads)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def clear(self) -> None:
        with self.lock:
            self.path.write_bytes(b"")

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for raw in self.path.read_bytes().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                logger.warning("skipping a torn journal line (%d bytes)", len(raw))
        return out


StartResponse = Callable[..., Any]


class JournalingApp:
    """WSGI middleware: journal each successful state-changing request of ``app``."""

    def __init__(self, app: Callable[[dict, StartResponse], Iterable[bytes]], journal: Journal):
        self.app, self.journal = app, journal

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api/reset"):
            self.journal.clear()
        if method not in WRITE_METHODS or path.startswith("/moto-api/"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def capture(code: str, headers: list, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        result = self.app(environ, capture)
        chunks = list(result)  # moto answers eagerly; this keeps the order "answer, then journal"
        if status and status[0][:1] == "2":
            self.journal.append(
                {
                    "method": method,
                    "path": path,
                    "query": environ.get("QUERY_STRING", ""),
                    "headers": {
                        k[5:].replace("_", "-").lower(): v
                        for k, v in environ.items()
                        if k.startswith("HTTP_")
                        and k[5:].replace("_", "-").lower() not in _SKIP_HEADERS
                    }
                    | {"content-type": environ.get("CONTENT_TYPE", "")},
                    "body": base64.b64encode(body).decode(),
                }
            )
        return chunks


def replay(app: Callable, journal: Journal, host: str) -> int:
    """Apply the journal to ``app`` in-process; returns how many requests were replayed."""
    from werkzeug.test import Client

    client = Client(app)
    done = 0
    for e in journal.entries():
        try:
            r = client.open(
                e["path"],
                method=e["method"],
                query_string=e["query"],
                headers=e["headers"],
                data=base64.b64decode(e["body"]),
                base_url=f"http://{host}",
            )
        except Exception as err:  # noqa: BLE001 - one bad entry must not lose the others
            logger.warning("journal entry %s %s failed: %s", e.get("method"), e.get("path"), err)
            continue
        done += r.status_code < 300
    return done


def build_app(journal: Journal):  # type: ignore[no-untyped-def]
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return JournalingApp(DomainDispatcherApplication(create_backend_app), journal)


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    p = argparse.ArgumentParser(description="moto S3 with a write journal (local subnet)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--journal", type=Path, required=True)
    args = p.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    journal = Journal(args.journal)
    app = build_app(journal)
    t0 = time.monotonic()
    n = replay(app.app, journal, f"{args.host}:{args.port}")
    logger.info("replayed %d journalled request(s) in %.2fs", n, time.monotonic() - t0)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
