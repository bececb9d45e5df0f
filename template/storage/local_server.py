"""A real S3 HTTP endpoint on loopback (moto's server) for tests, benchmarks and the local subnet.

``start_local_s3()`` runs it in a thread of this process; ``start_local_s3_process()`` runs it
as a child process (the multi-process local subnet; or when you need its own settings, such as
enforced authentication). Both return a ``LocalS3`` (``endpoint_url``, ``stop()``, context
manager). moto accepts any credentials until ``enforce_auth()`` is called.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import BucketConfig

logger = logging.getLogger(__name__)

LOCAL_ACCESS_KEY_ID = "testing"
LOCAL_SECRET_ACCESS_KEY = "testing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"local S3 server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/moto-api/data.json", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"local S3 server at {url} did not come up within {timeout:.0f}s")


@dataclass
class LocalS3:
    """A running local S3 endpoint."""

    endpoint_url: str
    _stop: Any = field(repr=False, default=None)

    def bucket(
        self,
        name: str,
        access_key_id: str = LOCAL_ACCESS_KEY_ID,
        secret_access_key: str = LOCAL_SECRET_ACCESS_KEY,
    ) -> BucketConfig:
        """A BucketConfig for bucket ``name`` on this endpoint (path-style addressing)."""
        return BucketConfig(
            self.endpoint_url, name, "us-east-1", "path", access_key_id, secret_access_key
        )

    def enforce_auth(self, after_requests: int = 0) -> None:
        """Make the server check signatures and IAM policies from now on (after N more requests)."""
        req = urllib.request.Request(
            self.endpoint_url + "/moto-api/reset-auth",
            data=str(after_requests).encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=5):
            pass

    def reset(self) -> None:
        """Forget every bucket and object."""
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def __enter__(self) -> LocalS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_s3(port: int | None = None) -> LocalS3:
    """Start moto's S3 server in a thread of this process, on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    if logging.getLogger("werkzeug").level == logging.NOTSET:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port or 0, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    url = f"http://{host}:{real_port}"
    _wait_until_up(url, 10)
    logger.info("local S3 endpoint (thread) at %s", url)
    return LocalS3(url, server.stop)


def start_local_s3_process(
    port: int | None = None, env: Mapping[str, str] | None = None, timeout: float = 30
) -> LocalS3:
    """Start moto's S3 server as a child process on 127.0.0.1 (stopped by ``stop()``)."""
    port = port or _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    try:
        _wait_until_up(url, timeout, proc)
    except BaseException:
        stop()
        raise
    logger.info("local S3 endpoint (process %d) at %s", proc.pid, url)
    return LocalS3(url, stop)


def main() -> None:
    """``python -m template.storage.local_server [port]``: serve until interrupted."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    s3 = start_local_s3(port)
    print(s3.endpoint_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s3.stop()


if __name__ == "__main__":
    main()
