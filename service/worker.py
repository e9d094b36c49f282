"""The AMQP entrypoint: consumes case-transfer events from RabbitMQ and runs the relay on each.

A message is acknowledged only once its outcome is durable in the store (or, for bad input, once
the broker has confirmed its copy in ``caf.dead``), so a crash at any point redelivers rather than
loses it. A message whose processing itself fails is requeued; the quorum queue's delivery limit
then dead-letters it, so a poison message cannot block the queue.
"""

from __future__ import annotations

import logging
import threading
import time

import pika
from pika.adapters.blocking_connection import BlockingChannel

from service.delivery import Deliverer
from service.relay import Relay

log = logging.getLogger(__name__)

EVENTS_EXCHANGE = "caf.events"
TRANSFERS_QUEUE = "caf.transfers"
TRANSFERS_BINDING = "caf.case-transfer.#"
DEAD_EXCHANGE = "caf.dead"
DEAD_QUEUE = "caf.dead"
DELIVERY_LIMIT = 5
REASON_HEADER = "x-caf-reason"


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


class Worker:
    def __init__(self, broker_url: str, relay: Relay, deliverer: Deliverer, prefetch: int) -> None:
        self._parameters = pika.URLParameters(broker_url)
        self._relay = relay
        self._deliverer = deliverer
        self._prefetch = prefetch
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        """Consume until ``stop()``; outstanding envelopes are delivered first."""
        self._deliverer.deliver_outstanding()
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
            if self._connection.is_open:
                self._connection.close()

    def stop(self) -> None:
        """Ask the consumer to finish the message in hand and return; safe from any thread."""
        self._stopping.set()
        connection, channel = self._connection, self._channel
        if connection is not None and channel is not None and connection.is_open:
            connection.add_callback_threadsafe(channel.stop_consuming)

    def _on_message(self, channel: BlockingChannel, method, properties, body: bytes) -> None:
        try:
            received = self._relay.receive(body)
        except Exception:
            # The store or a bug failed us, not the message: hand it back, and slow down so a
            # database outage does not spin. The delivery limit catches a true poison message.
            log.exception("processing failed; message requeued")
            channel.basic_nack(method.delivery_tag, requeue=True)
            time.sleep(1)
            return
        if received.rejection is not None:
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
                        REASON_HEADER: received.reason,
                        "x-caf-rejection": received.rejection.value,
                    },
                ),
            )
            log.warning("dead-lettered: %s", received.reason, extra={"event_id": received.event_id})
        channel.basic_ack(method.delivery_tag)
        if received.needs_delivery:
            try:
                self._deliverer.deliver(received.event_id)
            except Exception:
                # The envelope is stored as signed; the next start delivers it.
                log.exception("delivery not recorded", extra={"event_id": received.event_id})
