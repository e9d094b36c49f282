"""An adapter's URL read as its client library will read it, so that one the client cannot use
is refused when an admin sets it, not found out at every delivery as an unexplained error."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def readable_url(value: str) -> SplitResult | None:
    """``value``'s parts, or None if a client could not connect to it: an unclosed '[' around
    the host, or a port that is not a number from 1 to 65535."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    return None if port == 0 else parts
