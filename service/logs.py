"""Logging for every process: one JSON object a line, each naming the event it is about.

A line has ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``event_id`` when the
line is about one event, ``adapter_type`` when a delivery line names one, and ``exception``
(the traceback) when there is one. Log shippers read it as it is; ``CAF_RELAY_LOG_FORMAT=text``
gives the same fields as plain lines for a person at a terminal.

The event id travels in a context variable, so every line logged while one event is handled
carries it, from whichever module, without passing it around: the code that handles one event
runs in a context of its own (``own_log_context``) and names the event once it knows it
(``set_event_id``). The context ends with that call, so no later line on the thread inherits it.

No personal data: messages say what happened and why (ids, states, counts, reasons), never an
event's body or a child's details. Only the fields above are written, so an ``extra=`` passed
by some call cannot add a field that carries more.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EVENT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
_EXTRAS = ("event_id", "adapter_type")

F = TypeVar("F", bound=Callable[..., Any])


def own_log_context(handle: F) -> F:
    """Run ``handle`` in a copy of the current context: an event id it sets ends with it."""

    @functools.wraps(handle)
    def isolated(*args: Any, **kwargs: Any) -> Any:
        return contextvars.copy_context().run(handle, *args, **kwargs)

    return isolated  # type: ignore[return-value]


def set_event_id(event_id: str | None) -> None:
    """Name the event being handled, for every line logged from here to the context's end."""
    EVENT_ID.set(event_id)


class EventIdFilter(logging.Filter):
    """Gives each record the current event id, unless the call named one itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "event_id", None) is None:
            record.event_id = EVENT_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _EXTRAS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        named = [f"{n}={getattr(record, n)}" for n in _EXTRAS if getattr(record, n, None)]
        text = super().formatMessage(record)
        return f"{text} [{' '.join(named)}]" if named else text


# pika's log lines that the relay says in its own words, by logger, as each line begins. The
# first quotes the first 255 bytes of a message the broker returned: for the worker's dead
# letters, the event itself; the worker says "caf.dead routed nothing" instead. The others
# report, at ERROR, each step of a connection pika could not open or lost, which pika also
# raises to its caller: the worker logs one warning a try ("broker connection lost (...);
# reconnecting in 2.0s"), and the amqp adapter one when it sends a group again on a new
# connection, besides auditing an attempt that failed. During a broker restart they came to
# seven ERROR lines and a traceback a try, for what the relay handles itself. The worker logs
# at ERROR itself what needs a person (a login refused, a certificate not trusted, a broker gone
# a minute), and the amqp adapter a borough's broker refusing its login. pika's other warnings
# (a connection the broker has blocked) still show.
PIKA_LINES_SAID_OTHERWISE = {
    "pika.adapters.blocking_connection": (
        "Published message was returned",
        "Connection workflow failed",
        "Error in _create_connection()",
        "Unexpected connection close detected",
    ),
    "pika.adapters.base_connection": (
        "connection_lost:",
        "Transport indicated EOF",
        "Full-stack connection workflow failed",
        "Self-initiated stack bring-up failed",
    ),
    "pika.adapters.utils.connection_workflow": (
        "AMQPConnector - reporting failure",
        "AMQPConnectionWorkflow - reporting failure",
        "AMQP connection workflow failed",
        "TCP Connection attempt failed",
        "Attempt to create the streaming transport failed",
        "getaddrinfo failed",
        "Timeout while setting up AMQP",
    ),
    "pika.adapters.utils.selector_ioloop_adapter": ("Address resolution failed",),
    "pika.connection": (
        "Connection closed while authenticating",
        "Connection closed while tuning",
    ),
    "pika.adapters.utils.io_services_utils": (
        "SSL do_handshake failed",
        "Socket failed to connect",
        "Socket EOF",
        "_AsyncBaseTransport._consume() failed",
        "_AsyncBaseTransport._produce() failed",
    ),
}


class SaidOtherwise(logging.Filter):
    """Drops a logger's lines that begin with one of ``beginnings``."""

    def __init__(self, beginnings: tuple[str, ...]) -> None:
        super().__init__()
        self.beginnings = beginnings

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.beginnings)


def configure_logging(level: str, log_format: str) -> None:
    """Log to stderr in ``log_format``; leaves the handlers alone if the process already set
    them up (a test runner, or an embedding application, has its own), and quiets pika either
    way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(EventIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # pika narrates every connection step at INFO; its warnings and errors are what operators need.
    logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger().level))
    for name, beginnings in PIKA_LINES_SAID_OTHERWISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, SaidOtherwise) for f in logger.filters):
            logger.addFilter(SaidOtherwise(beginnings))


def where_it_failed(exc: BaseException) -> str:
    """An exception's type and where it was raised, without its message: an error raised while
    an event is handled may quote the event (a date of birth a parser refused, say)."""
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"{type(exc).__name__}\n{frames}" if frames else type(exc).__name__
