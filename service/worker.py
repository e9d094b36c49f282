"""The AMQP entrypoint: consumes case-transfer events from RabbitMQ and runs the relay on each.

A message is acknowledged only once its outcome is durable in the store (or, for bad input, once
the broker has confirmed its copy in ``caf.dead``), so a crash at any point redelivers rather than
loses it. While the database is unreachable the message in hand is held, neither acknowledged
nor handed back, and retried until the database returns. A message whose processing fails for
any other reason is handed back; on its last allowed delivery it is dead-lettered with the error,
so a poison message cannot block the queue. A lost broker connection is reopened with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from service.logs import own_log_context, set_event_id
from service.relay import Relay, Sender
from service.store.store import StoreUnavailable

log = logging.getLogger(__name__)

EVENTS_EXCHANGE = "caf.events"
TRANSFERS_QUEUE = "caf.transfers"
TRANSFERS_BINDING = "caf.case-transfer.#"
DEAD_EXCHANGE = "caf.dead"
DEAD_QUEUE = "caf.dead"
DELIVERY_LIMIT = 5
REASON_HEADER = "x-caf-reason"
REJECTION_HEADER = "x-caf-rejection"
PROCESSING_FAILED = "processing_failed"
MAX_BACKOFF_SECONDS = 30.0
_BROKER_LOST = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
)


def declare_topology(channel: BlockingChannel) -> None:
    """Declare exchanges, queues and bindings; repeating it changes nothing."""
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(DEAD_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(DEAD_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(DEAD_QUEUE, DEAD_EXCHANGE)
    channel.queue_declare(
        TRANSFERS_QUEUE,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )
    channel.queue_bind(TRANSFERS_QUEUE, EVENTS_EXCHANGE, routing_key=TRANSFERS_BINDING)


class _Stopping(Exception):
    """Raised inside message handling to leave a held message unacknowledged and stop."""


class Worker:
    def __init__(
        self,
        broker_url: str,
        relay: Relay,
        *,
        senders: Callable[[str | None], Sender],
        prefetch: int,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._parameters = pika.URLParameters(broker_url)
        self._relay = relay
        self._senders = senders
        self._prefetch = prefetch
        self._on_stored = on_stored
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        """Consume until ``stop()``, reconnecting whenever the broker goes away."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consume()
                backoff = 0.5
            except _BROKER_LOST as exc:
                self.ready.clear()
                log.warning("broker connection lost (%r); reconnecting in %.1fs", exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def stop(self) -> None:
        """Ask the consumer to finish the message in hand and return; safe from any thread."""
        self._stopping.set()
        connection, channel = self._connection, self._channel
        if connection is not None and channel is not None and connection.is_open:
            # If the connection is already going, run() sees _stopping and returns anyway.
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.add_callback_threadsafe(channel.stop_consuming)

    def _consume(self) -> None:
        self._connection = pika.BlockingConnection(self._parameters)
        try:
            channel = self._connection.channel()
            self._channel = channel
            declare_topology(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self._prefetch)
            channel.basic_consume(TRANSFERS_QUEUE, self._on_message)
            self.ready.set()
            log.info("worker consuming from %s", TRANSFERS_QUEUE)
            if not self._stopping.is_set():
                channel.start_consuming()
        finally:
            self.ready.clear()
            if self._connection.is_open:
                self._connection.close()

    @own_log_context
    def _on_message(self, channel: BlockingChannel, method, properties, body: bytes) -> None:
        try:
            received = self._receive_holding(body, properties.user_id)
        except _Stopping:
            return  # not acknowledged: the broker gives it to the next consumer
        except Exception as exc:
            self._processing_failed(channel, method, properties, body, exc)
            return
        set_event_id(received.event_id)
        if received.rejection is not None:
            self._dead_letter(
                channel, method, properties, body, received.reason, received.rejection
            )
            log.warning("dead-lettered: %s", received.reason, extra={"event_id": received.event_id})
        channel.basic_ack(method.delivery_tag)
        if received.needs_delivery:
            self._on_stored()

    def _receive_holding(self, body: bytes, user_id: str | None):
        """Run the relay, waiting out a database outage while keeping the broker connection."""
        wait = 0.5
        while True:
            try:
                return self._relay.receive(body, sender=self._senders(user_id))
            except StoreUnavailable as exc:
                if self._stopping.is_set():
                    raise _Stopping from exc
                log.warning("store unavailable, holding the message for %.1fs: %s", wait, exc)
                self._connection.sleep(wait)
                wait = min(wait * 2, MAX_BACKOFF_SECONDS)

    def _processing_failed(self, channel, method, properties, body, exc: Exception) -> None:
        deliveries = int((properties.headers or {}).get("x-delivery-count", 0)) + 1
        if deliveries < DELIVERY_LIMIT:
            log.exception("processing failed (delivery %d); message requeued", deliveries)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        reason = f"Processing failed on each of {deliveries} deliveries; last: {exc!r}"[:1000]
        log.error("dead-lettered a message that cannot be processed: %s", reason)
        self._dead_letter(channel, method, properties, body, reason, PROCESSING_FAILED)
        channel.basic_ack(method.delivery_tag)

    @staticmethod
    def _dead_letter(channel, method, properties, body, reason: str, rejection: str) -> None:
        """Publish to caf.dead, confirmed by the broker before the original is acknowledged."""
        channel.basic_publish(
            DEAD_EXCHANGE,
            method.routing_key,
            body,
            pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                content_type=properties.content_type,
                message_id=properties.message_id,
                headers={
                    **(properties.headers or {}),
                    REASON_HEADER: reason,
                    REJECTION_HEADER: str(rejection),
                },
            ),
        )
