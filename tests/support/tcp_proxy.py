"""A TCP proxy in front of a real server, for tests of what a client does when the network
fails it: every connection cut at once, or the server's answers held back; and for tests of how
many connections a client opens (``accepted``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class TcpProxy:
    """Forwards connections from a local port to ``upstream``.

    ``cut()``: every open connection is closed now (new ones are forwarded again);
    ``cut_after(n)``: the same, once n more bytes have gone from clients to the server.
    ``hold_answers()``: from now on, what the server sends is read and dropped, as from a
    server that has stopped answering.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._cut_after: int | None = None
        self._holding = False
        self.cuts = 0
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, count: int) -> None:
        with self._lock:
            self._cut_after = count

    def hold_answers(self) -> None:
        self._holding = True

    def close(self) -> None:
        """Cut every connection and refuse new ones (a listener only closed would still take
        them while its accept() waits)."""
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                self.accepted += 1
                self._open += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if not upstream and self._holding:
                    continue
                target.sendall(data)
                if upstream and self._counted(len(data)):
                    self.cut()
                    return
        except OSError:
            pass
        finally:
            for end in (source, target):
                with suppress(OSError):
                    end.close()

    def _counted(self, sent: int) -> bool:
        with self._lock:
            if self._cut_after is None:
                return False
            self._cut_after -= sent
            if self._cut_after > 0:
                return False
            self._cut_after = None
            return True

    def cut(self) -> None:
        """Close every open connection now; new ones are forwarded again."""
        with self._lock:
            doomed, self._open = self._open, []
            self.cuts += 1
        for end in doomed:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
                end.close()


@contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
