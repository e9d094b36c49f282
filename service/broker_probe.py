"""The broker as a web process sees it: the relay's queues, read on one connection it keeps.

``/metrics`` (the queues' depths and consumers, and whether the broker answers) and ``/readyz``
(whether it answers) both ask. A connection for each would be a TCP connection, an AMQP
handshake and a login on the broker for every scrape and every probe, of every web process of
every replica: churn the broker pays for and logs. So the web app keeps one ``BrokerProbe``
(``service.web.create_app``), which keeps one connection, opened at its first reading and again
only once the broker has dropped it: a reading that finds it dropped (the broker closes a
connection left idle past its heartbeat) opens another at once, rather than say the broker is
down.

A reading is taken at most once every ``BROKER_CHECK_SECONDS``; a caller within them gets the
last one, and callers who come while one is being taken share it. ``/readyz`` needs no token,
so anyone who can reach it could otherwise have the relay ask the broker as often as they call.

No caller waits more than ``PROBE_TIMEOUT_SECONDS`` for a reading: a scrape must end within
Prometheus' scrape timeout (10 s by default) and any request within gunicorn's worker timeout,
and pika gives up on a connection that stops answering only when its heartbeat runs out, about
two minutes with RabbitMQ's default. So a reading runs in a thread of its own, and one not
taken in time is a broker not answering. Until pika gives up, that reading stays the one being
taken: later callers wait for it (as long again at most) rather than start another beside it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass

import pika
import pika.exceptions

from service.worker import DEAD_QUEUE, TRANSFERS_QUEUE

PROBE_TIMEOUT_SECONDS = 3
# Shorter than any load balancer's or orchestrator's probe interval (Kubernetes' default is 10 s),
# so each of their probes still sees the broker as it is.
BROKER_CHECK_SECONDS = 5
QUEUES = (TRANSFERS_QUEUE, DEAD_QUEUE)


@dataclass(frozen=True)
class QueueState:
    """What the broker says of a queue when it is declared passively."""

    messages: int  # ready, not yet taken by a consumer
    consumers: int


@dataclass(frozen=True)
class BrokerReading:
    """Each of the relay's queues (None for one not declared yet), or why there are none."""

    queues: dict[str, QueueState | None] | None
    error: Exception | None = None


class BrokerProbe:
    def __init__(self, broker_url: str) -> None:
        self._parameters = pika.URLParameters(broker_url)
        self._parameters.connection_attempts = 1
        self._parameters.socket_timeout = PROBE_TIMEOUT_SECONDS
        self._parameters.stack_timeout = PROBE_TIMEOUT_SECONDS
        self._parameters.blocked_connection_timeout = PROBE_TIMEOUT_SECONDS
        self._lock = threading.Lock()
        self._last: tuple[float, BrokerReading] | None = None
        self._taking: Future[BrokerReading] | None = None
        self._connection: pika.BlockingConnection | None = None  # one reading uses it at a time

    def reading(self) -> BrokerReading:
        """The last reading if it is recent, else a new one, within ``PROBE_TIMEOUT_SECONDS``."""
        with self._lock:
            if self._last and time.monotonic() - self._last[0] < BROKER_CHECK_SECONDS:
                return self._last[1]
            taking = self._taking
            if taking is None:
                taking = Future()
                try:
                    threading.Thread(
                        target=self._take, args=(taking,), name="broker-probe", daemon=True
                    ).start()
                except RuntimeError as exc:
                    # No thread to be had (a container's pids limit): this reading fails,
                    # saying so, and is not left the one being taken, which no thread would end.
                    taking.set_result(BrokerReading(None, exc))
                else:
                    self._taking = taking
        try:
            reading = taking.result(timeout=PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            silent = f"The broker did not answer within {PROBE_TIMEOUT_SECONDS} seconds."
            reading = BrokerReading(None, TimeoutError(silent))
        with self._lock:
            self._last = (time.monotonic(), reading)
        return reading

    def _take(self, taking: Future[BrokerReading]) -> None:
        try:
            reading = BrokerReading(self._queues())
        except Exception as exc:  # whatever keeps the broker from answering is what it says
            self._drop()
            reading = BrokerReading(None, exc)
        with self._lock:
            self._taking = None
        taking.set_result(reading)

    def _queues(self) -> dict[str, QueueState | None]:
        if self._connection is not None and self._connection.is_open:
            try:
                return _queue_states(self._connection)
            except pika.exceptions.AMQPConnectionError:  # dropped since: the broker may be back
                self._drop()
        self._connection = pika.BlockingConnection(self._parameters)
        return _queue_states(self._connection)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with suppress(Exception):  # it is given up on either way
                connection.close()


def _queue_states(connection: pika.BlockingConnection) -> dict[str, QueueState | None]:
    return {queue: _queue_state(connection, queue) for queue in QUEUES}


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
