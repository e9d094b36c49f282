"""A time limit on a whole HTTPS exchange, which requests does not have.

requests' timeouts bound each wait for the socket, not the exchange: an endpoint that sends its
answer a byte at a time, each within the read timeout, could hold an attempt past its delivery
lease, and the envelope be sent again by another worker meanwhile. So a session mounted with
``CutoffAdapter`` registers, with the ``cutoff`` the calling thread is inside, every connection
it sends on; when the cutoff's time is up, a timer shuts those sockets, and whatever the thread
was waiting for ends at once with a connection error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import requests.adapters
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

_within = threading.local()  # the cutoff of the exchange this thread is making, if any


class Cutoff:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The sockets, not their connections: a connection that will close after the answer
        # lets go of its socket once the headers are read, while the body is still to come.
        self._sockets: list[Any] = []
        self.fired = False

    def watch(self, sock: Any) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:  # connected just after the time was up
            _shut(sock)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


@contextmanager
def cutoff(seconds: float) -> Iterator[Cutoff]:
    """Every exchange this thread makes through a ``CutoffAdapter`` inside the block ends within
    ``seconds``; ``fired`` then says whether one was cut short."""
    watching = Cutoff()
    timer = threading.Timer(seconds, watching.fire)
    timer.daemon = True
    _within.cutoff = watching
    timer.start()
    try:
        yield watching
    finally:
        timer.cancel()
        _within.cutoff = None


def _shut(sock: Any) -> None:
    # Through an HTTPS proxy, TLS runs inside TLS (urllib3's SSLTransport) over the socket.
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if raw is None:
        return
    with suppress(OSError):
        # The plain socket's shutdown: the TLS layer stays whole for the thread reading it,
        # which sees the connection end.
        socket.socket.shutdown(raw, socket.SHUT_RDWR)


def _watched(connection: HTTPSConnection) -> None:
    watching = getattr(_within, "cutoff", None)
    if watching is not None and connection.sock is not None:
        watching.watch(connection.sock)


class _WatchedConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watched(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)  # a kept-alive connection, not connected again; a new one has no socket yet
        super().request(*args, **kwargs)


class _WatchedPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedConnection


class CutoffAdapter(requests.adapters.HTTPAdapter):
    """requests' transport, its HTTPS connections (direct or through an HTTP proxy) watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> PoolManager:
        manager = super().proxy_manager_for(*args, **kwargs)
        _watch_pools(manager)
        return manager


def _watch_pools(manager: PoolManager) -> None:
    # Only urllib3's own pools: a SOCKS proxy's have their own connection class.
    if manager.pool_classes_by_scheme["https"] is HTTPSConnectionPool:
        manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme, "https": _WatchedPool}
