"""Real-broker helpers: run the worker in a thread, publish with pika, read a queue back."""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pika
import pika.data
import pika.exceptions

from contracts.vocabulary import EVENT_TYPE
from service.bootstrap import Services
from service.worker import DEAD_QUEUE, EVENTS_EXCHANGE, TRANSFERS_QUEUE, Worker, declare_topology
from tests.conftest import rabbitmqctl


def broker_user(broker_url: str) -> str:
    """The account the URL logs in as: the ``user_id`` the broker lets its messages carry."""
    return pika.URLParameters(broker_url).credentials.username


def reset_topology(broker_url: str) -> None:
    """Declare the relay's topology and empty its queues, so a test starts from nothing."""
    with broker_channel(broker_url) as channel:
        declare_topology(channel)
        for queue in (TRANSFERS_QUEUE, DEAD_QUEUE):
            channel.queue_purge(queue)


def delete_queue(broker_url: str, queue: str) -> None:
    with broker_channel(broker_url) as channel:
        channel.queue_delete(queue)


@contextmanager
def queue_policy(broker_url: str, queue: str, definition: str) -> Iterator[None]:
    """While it lasts, a policy (JSON ``definition``) applies to ``queue`` in the URL's vhost,
    as an operator would set one."""
    vhost = unquote(urlsplit(broker_url).path[1:])
    name = f"test-{queue}"
    rabbitmqctl(
        "set_policy", "-p", vhost, "--apply-to", "queues", name, f"^{re.escape(queue)}$", definition
    )
    try:
        yield
    finally:
        rabbitmqctl("clear_policy", "-p", vhost, name)


@contextmanager
def broker_channel(broker_url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A channel on a connection of its own, as another client of the broker has."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


@contextmanager
def running_worker(
    broker_url: str, services: Services, relay=None, senders=None
) -> Iterator[Worker]:
    """The worker and its delivery loop in threads of this process: the parts `caf-relay
    worker` runs, with the loop behind the same ``Delivery`` port as its delivery process."""
    delivery = services.delivery_loop()
    worker = Worker(
        broker_url,
        relay or services.relay,
        senders=senders or services.senders,
        prefetch=16,
        delivery=delivery,
    )
    threads = [
        threading.Thread(target=delivery.run, name="test-delivery", daemon=True),
        threading.Thread(target=worker.run, name="test-worker", daemon=True),
    ]
    for thread in threads:
        thread.start()
    if not worker.ready.wait(15):
        raise RuntimeError("the worker did not start consuming")
    try:
        yield worker
    finally:
        worker.stop()
        delivery.stop()
        for thread in threads:
            thread.join(15)


@dataclass(frozen=True)
class Raw:
    """A header value as another client library may send it and pika would not: an AMQP field
    type (``b"T"`` timestamp, ``b"d"`` double) and the value packed as ``format``."""

    kind: bytes
    format: str
    value: float | int


@contextmanager
def sending_raw_headers() -> Iterator[None]:
    """While it lasts, pika encodes a ``Raw`` header value as it says; every other as before."""
    encode_value = pika.data.encode_value

    def encode(pieces: list[bytes], value) -> int:
        if not isinstance(value, Raw):
            return encode_value(pieces, value)
        pieces.append(value.kind + struct.pack(value.format, value.value))
        return 1 + struct.calcsize(value.format)

    pika.data.encode_value = encode
    try:
        yield
    finally:
        pika.data.encode_value = encode_value


def publish(
    broker_url: str,
    *bodies: bytes,
    routing_key: str = EVENT_TYPE,
    with_user_id: bool = True,
    headers: dict | None = None,
    **properties,
) -> None:
    """Publish persistently with publisher confirms, as a case system would.

    Messages carry the login as ``user_id`` (the broker checks it), unless ``with_user_id`` is
    False, as from a case system that does not say who it is; ``headers``, if given; and any
    other ``properties`` (``correlation_id=...``) a case system may set.
    """
    with broker_channel(broker_url) as channel:
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                EVENTS_EXCHANGE,
                routing_key,
                body,
                pika.BasicProperties(
                    **{
                        "content_type": "application/cloudevents+json",
                        "delivery_mode": pika.DeliveryMode.Persistent,
                        "user_id": broker_user(broker_url) if with_user_id else None,
                        "headers": headers,
                        **properties,
                    }
                ),
                mandatory=True,
            )


def publish_resiliently(broker_url: str, bodies: list[bytes]) -> int:
    """Publish each body until the broker confirms it, riding out a broker restart.

    As a careful case system does: a body whose confirm was lost with the connection is sent
    again, so the relay may see it twice and must drop the duplicate. Returns how many resends.
    """
    resent, index, connection = 0, 0, None
    while index < len(bodies):
        try:
            if connection is None or connection.is_closed:
                connection = pika.BlockingConnection(pika.URLParameters(broker_url))
                channel = connection.channel()
                channel.confirm_delivery()
            channel.basic_publish(
                EVENTS_EXCHANGE,
                EVENT_TYPE,
                bodies[index],
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, user_id=broker_user(broker_url)
                ),
                mandatory=True,
            )
            index += 1
        except pika.exceptions.AMQPError:
            connection, resent = None, resent + 1
            time.sleep(0.5)
    connection.close()
    return resent


def take(broker_url: str, queue: str, count: int, timeout: float = 20.0) -> list[tuple]:
    """Wait for ``count`` messages on ``queue`` and return (properties, body) for each."""
    taken: list[tuple] = []
    deadline = time.monotonic() + timeout
    with broker_channel(broker_url) as channel:
        while len(taken) < count and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
            else:
                taken.append((properties, body))
    return taken


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"gave up after {timeout}s waiting for {predicate}")
