"""What lies under the errors pika raises: it wraps the one that mattered (a refused socket, a
login refused) in layers of its own, whose texts may be empty or quote the connection's
parameters, so the relay's messages name what it finds underneath instead."""

from __future__ import annotations

from collections.abc import Iterator


def wrapped(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what pika wrapped it around, outermost first (the last of several)."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        yield error
        inner = [
            a
            for a in (
                *getattr(error, "exceptions", ()),
                getattr(error, "exception", None),
                *error.args,
            )
            if isinstance(a, BaseException)
        ]
        if not inner:
            return
        error = inner[-1]


def socket_error(error: BaseException) -> str | None:
    """The operating system's words for the socket error under ``error`` ("Connection
    refused"; "timed out" for a connect that had no answer), if there is one."""
    return next(
        (
            e.strerror or str(e) or type(e).__name__
            for e in wrapped(error)
            if isinstance(e, OSError)
        ),
        None,
    )
