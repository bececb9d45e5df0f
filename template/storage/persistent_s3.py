"""moto's S3 server with a write journal, so a local subnet's buckets survive an S3 restart.

moto keeps every bucket in memory. This launcher wraps its WSGI app: every successful
request that changes state (PUT, POST, DELETE) is appended to a JSON-lines journal (method,
path, query, headers, body in base64), one locked write per request. At start-up the journal
is replayed into the fresh in-memory server BEFORE the port opens, so once the endpoint answers
it holds every bucket and object it held when it stopped (or was killed: a request is in the
journal once its response was sent). A torn last line (killed mid-write) is skipped. Before the
replay the journal is compacted: objects overwritten or deleted since are dropped from it.

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

    def rewrite(self, entries: list[dict[str, Any]]) -> None:
        """Replace the journal with ``entries`` (atomically: a temporary file renamed)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join((json.dumps(e, separators=(",", ":")) + "\n").encode() for e in entries)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)

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


def _deleted_keys(entry: dict[str, Any]) -> list[str]:
    """The keys a multi-object delete (POST /bucket?delete) names, from its XML body."""
    import xml.etree.ElementTree as ET  # our own journal, written by this server

    try:
        root = ET.fromstring(base64.b64decode(entry["body"]))
    except (ET.ParseError, ValueError):
        return []
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]


def compact(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that still matter: an object PUT overwritten by a later PUT, or deleted
    later (DELETE, or a multi-object delete), is dropped with the DELETE that removed it. The
    journal starts from an empty server, so no object exists but through a journalled PUT."""
    live: dict[str, int] = {}  # "/bucket/key" -> index of its live PUT
    dropped: set[int] = set()
    for i, e in enumerate(entries):
        path, method, query = e.get("path", ""), e.get("method"), e.get("query", "")
        is_object = path.count("/") >= 2 and path.split("/", 2)[2] != ""
        if method == "PUT" and query == "" and is_object:
            if path in live:
                dropped.add(live[path])
            live[path] = i
        elif method == "DELETE" and query == "" and is_object and path in live:
            dropped.update((live.pop(path), i))
        elif method == "POST" and query == "delete":
            bucket = path.rstrip("/")
            for key in _deleted_keys(e):
                j = live.pop(f"{bucket}/{key}", None)
                if j is not None:
                    dropped.add(j)
    return [e for i, e in enumerate(entries) if i not in dropped]


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
    journal.rewrite(compact(journal.entries()))  # before the port opens: nobody writes yet
    n = replay(app.app, journal, f"{args.host}:{args.port}")
    logger.info("replayed %d journalled request(s) in %.2fs", n, time.monotonic() - t0)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
