"""The sockets a storage client opened, so that closing the client ends reads stuck on a dead
or paused endpoint.

A worker thread blocked in a socket read waits out its read timeout (20 s by default) even
after the client is closed, and a process's exit waits for that thread: a node stopping while
its bucket hung took 25 s to exit after its last log line. ``track_sockets`` records every
socket a boto3 client opens (through the address-checking connections for a peer's bucket);
``shut_sockets`` shuts them down, so blocked reads return at once.
"""

from __future__ import annotations

import contextlib
import socket
import weakref

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)

from .netguard import GuardedHTTPConnection, GuardedHTTPSConnection, set_pool_classes


def track_sockets(s3, public_only: bool) -> weakref.WeakSet:  # type: ignore[no-untyped-def]
    """Install connections on ``s3`` that record their sockets (and, when ``public_only``,
    check every address: netguard.py); returns the live set of sockets."""
    sockets: weakref.WeakSet = weakref.WeakSet()

    class Tracked:
        def _new_conn(self):  # type: ignore[no-untyped-def]
            sock = super()._new_conn()  # type: ignore[misc]
            sockets.add(sock)
            return sock

    http = GuardedHTTPConnection if public_only else AWSHTTPConnection
    https = GuardedHTTPSConnection if public_only else AWSHTTPSConnection
    pools = {
        "http": type(
            "Pool", (AWSHTTPConnectionPool,), {"ConnectionCls": type("C", (Tracked, http), {})}
        ),
        "https": type(
            "Pool", (AWSHTTPSConnectionPool,), {"ConnectionCls": type("C", (Tracked, https), {})}
        ),
    }
    set_pool_classes(s3, pools)
    return sockets


def shut_sockets(sockets: weakref.WeakSet) -> int:
    """Shut down every recorded socket (reads blocked on them return); how many were open."""
    n = 0
    for sock in list(sockets):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            n += 1
    return n
