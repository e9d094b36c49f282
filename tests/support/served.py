"""The Flask app behind a real HTTP server, for what Flask's test client cannot send: a
chunked body (no Content-Length), read as gunicorn reads it."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The base URL of ``app``, served until the block ends."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def chunked(body: bytes, size: int = 65_536) -> Iterable[bytes]:
    """``body`` in pieces: requests sends a generator chunked."""
    return (body[start : start + size] for start in range(0, len(body), size))
