"""Whether this process can do its work now: the database answers and, if it uses one, the broker.

``/readyz`` reports each check with the reason it failed, for the operator reading it; a reason
names the error, never a URL's password (it is masked wherever it would appear). The broker is
probed with a fresh connection and short timeouts, so a broker that hangs makes the check fail
in seconds rather than hold the caller; so is the database, where on SQLite the check takes the
write lock and waits at most ``DATABASE_WRITE_SECONDS`` for it. ``/readyz`` needs no token, so
its broker check is taken at most once every ``BROKER_CHECK_SECONDS`` in a process
(``SpacedBrokerCheck``): anyone who can reach it could otherwise have the relay open broker
connections as fast as they call it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions

from adapters.pika_errors import socket_error
from service.store.store import Store
from service.worker import DEAD_QUEUE, TRANSFERS_QUEUE

PROBE_TIMEOUT_SECONDS = 3
# How long the database check waits for SQLite's write lock: a probe must answer within its
# orchestrator's timeout (Kubernetes' default is 1 s, often raised to a few), where the busy
# timeout of ordinary calls is 30 s; a database no one can write to for this long is not ready.
DATABASE_WRITE_SECONDS = 2
# Shorter than any load balancer's or orchestrator's probe interval (Kubernetes' default is 10 s),
# so each of their probes still sees the broker as it is.
BROKER_CHECK_SECONDS = 5
QUEUES = (TRANSFERS_QUEUE, DEAD_QUEUE)
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*):[^@\s]*@")


@dataclass(frozen=True)
class QueueState:
    """What the broker says of a queue when it is declared passively."""

    messages: int  # ready, not yet taken by a consumer
    consumers: int


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"status": "ok" if self.ok else "failed", "detail": self.detail}


def check_database(store: Store) -> Check:
    try:
        store.ping(within=DATABASE_WRITE_SECONDS)
    except Exception as exc:  # whatever stops the database answering makes this not ready
        return Check(False, _reason(exc, store.url))
    return Check(True, "The database answers.")


def check_broker(broker_url: str) -> Check:
    try:
        broker_queues(broker_url)
    except Exception as exc:  # any failure to reach the broker makes this not ready
        return Check(False, _reason(exc, broker_url))
    return Check(True, "The broker accepts connections.")


class SpacedBrokerCheck:
    """``check_broker`` taken at most once every ``BROKER_CHECK_SECONDS``: a caller within them
    gets the last result, and callers who come while it is being taken wait for it rather than each
    opening a connection of their own."""

    def __init__(self, broker_url: str) -> None:
        self._broker_url = broker_url
        self._lock = threading.Lock()
        self._last: tuple[float, Check] | None = None

    def check(self) -> Check:
        with self._lock:
            if self._last is None or time.monotonic() - self._last[0] >= BROKER_CHECK_SECONDS:
                checked = check_broker(self._broker_url)
                self._last = (time.monotonic(), checked)
            return self._last[1]


def broker_queues(broker_url: str) -> dict[str, QueueState | None]:
    """Each of the relay's queues as the broker sees it (None for one not declared yet).

    Raises whatever pika raises when the broker cannot be reached or refuses the login.
    """
    parameters = pika.URLParameters(broker_url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = PROBE_TIMEOUT_SECONDS
    parameters.stack_timeout = PROBE_TIMEOUT_SECONDS
    parameters.blocked_connection_timeout = PROBE_TIMEOUT_SECONDS
    connection = pika.BlockingConnection(parameters)
    try:
        return {queue: _queue_state(connection, queue) for queue in QUEUES}
    finally:
        connection.close()


def _queue_state(connection: pika.BlockingConnection, queue: str) -> QueueState | None:
    channel = connection.channel()
    try:
        declared = channel.queue_declare(queue, passive=True).method
        return QueueState(declared.message_count, declared.consumer_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:  # the worker declares it when it first starts
            return None
        raise
    finally:
        if channel.is_open:
            channel.close()


def _reason(exc: Exception, url: str) -> str:
    """The error, for a person, with the URL's password masked wherever it would appear. pika's
    refused connection says nothing of itself; the socket error under it does."""
    said = str(exc) or socket_error(exc) or "no reason given"
    text = _URL_PASSWORD.sub(r"\1:***@", f"{type(exc).__name__}: {said}")
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***").replace(unquote(password), "***")
    return text[:500]
