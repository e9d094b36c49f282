"""The AMQP entrypoint: consumes case-transfer events from RabbitMQ and runs the relay on them.

Messages are taken in batches, as many as have arrived within the prefetch window, and their
outcomes stored in one transaction (``Relay.receive_many``): a commit and a turn at the audit
chain's head per batch rather than per event. A message is acknowledged only once its outcome
is durable in the store (or, for bad input, once the broker has confirmed its copy in
``caf.dead``), so a crash at any point redelivers rather than loses it; the batch is then
acknowledged at once. While the database is unreachable the batch in hand is held, neither
acknowledged nor handed back, and retried until the database returns. A message whose
processing fails for any other reason is handed back on its own; on its last allowed delivery
it is dead-lettered with the error, so a poison message cannot block the queue or its batch. A
lost broker connection is reopened with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from service.amqp_headers import dead_letter_properties, read_headers_as_sent
from service.domain.retry import outage_waits
from service.logs import own_log_context, set_event_id, where_it_failed
from service.relay import PROCESSING_FAILED, Received, Relay
from service.senders import Sender
from service.store.engine import StoreUnavailable
from service.store.outbox import Claimed, Lease

log = logging.getLogger(__name__)

EVENTS_EXCHANGE = "caf.events"
TRANSFERS_QUEUE = "caf.transfers"
TRANSFERS_BINDING = "caf.case-transfer.#"
DEAD_EXCHANGE = "caf.dead"
DEAD_QUEUE = "caf.dead"
DELIVERY_LIMIT = 5
REASON_HEADER = "x-caf-reason"
REJECTION_HEADER = "x-caf-rejection"
# The refused event's id, when it could be read: the id its ``rejected`` audit record is under.
EVENT_ID_HEADER = "x-caf-event-id"
# The exchange the original was published to ("" for the default exchange, straight to the
# queue): with the routing key, what an operator needs to send a fixed letter again.
EXCHANGE_HEADER = "x-caf-exchange"
STOP_CHECK_SECONDS = 0.2  # how often a worker waiting out an outage looks for stop()
_BROKER_LOST = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.UnroutableError,  # caf.dead still routing nothing: reconnect and redeclare
)
# Failures to connect that trying again will not mend: the worker's settings or the broker's
# need a person. Not a name that does not resolve, nor a TLS handshake cut short: a broker
# container that is restarting has no name for a while, and may go mid-handshake.
_NEEDS_A_PERSON = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
    ssl.SSLCertVerificationError,
)
# The broker's replies, closing the channel, that trying again will not mend either: the
# relay's queue declared by someone else with other arguments (PRECONDITION_FAILED), or the
# user not allowed to declare it (ACCESS_REFUSED).
_REFUSED_FOR_GOOD = (403, 406)
# A broker restart takes seconds; one gone a minute is an outage.
OUTAGE_SECONDS = 60.0


def loss_level(error: BaseException, down_for: float) -> int:
    """The level to log a failed try at: WARNING for a broker restarting, which the worker rides
    out alone; ERROR for what needs a person (a login refused, a certificate not trusted, a
    queue that exists with other arguments), at once, or for a broker gone for OUTAGE_SECONDS."""
    if isinstance(error, _NEEDS_A_PERSON) or isinstance(error.__cause__, _NEEDS_A_PERSON):
        return logging.ERROR
    if (
        isinstance(error, pika.exceptions.ChannelClosedByBroker)
        and error.reply_code in _REFUSED_FOR_GOOD
    ):
        return logging.ERROR
    return logging.ERROR if down_for >= OUTAGE_SECONDS else logging.WARNING


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


# A batch is what arrived within the prefetch window while the last one was being stored, taken
# without waiting for more: under load, batches fill by themselves; waiting would only delay
# each batch's first message (measured on 2 cores at 200 events/s: no slower, and PostgreSQL's
# throughput higher, than lingering for up to 10 ms).
IDLE_WAIT_SECONDS = 1.0


class Delivery(Protocol):
    """Where intake hands over what it stored for delivery: a ``DeliveryLoop`` in this process,
    or the worker's delivery process (``service.delivery_process``)."""

    def lease(self) -> Lease | None: ...

    def take(self, held: list[Claimed]) -> None: ...

    def wake(self) -> None: ...


class _Stopping(Exception):
    """Raised inside message handling to leave held messages unacknowledged and stop."""


@dataclass(frozen=True)
class _Message:
    method: Any
    properties: pika.BasicProperties
    body: bytes


def _earlier_deliveries(message: _Message) -> int:
    """How often the broker delivered the message before. On a first delivery the publisher's
    own x-delivery-count header comes through as it was sent, which could crash the worker or
    spend the message's retries at once; RabbitMQ (3.10) sets its own on a consumer's
    redelivery only. A basic.get, which the worker does not use, shows 0 on a first one."""
    count = (message.properties.headers or {}).get("x-delivery-count")
    if not message.method.redelivered or not isinstance(count, int) or isinstance(count, bool):
        return 0
    return max(count, 0)


class Worker:
    def __init__(
        self,
        broker_url: str,
        relay: Relay,
        *,
        senders: Callable[[str | None], Sender],
        prefetch: int,
        delivery: Delivery | None = None,
    ) -> None:
        read_headers_as_sent()  # a timestamp out of range stops no one; a fraction stays one
        self._parameters = pika.URLParameters(broker_url)
        self._relay = relay
        self._senders = senders
        self._prefetch = prefetch
        # Half the window: the broker sends the next batch while this one is being stored.
        self._batch = max(1, prefetch // 2)
        self._delivery = delivery
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._arrived: list[_Message] = []
        self._stopping = threading.Event()
        self.ready = threading.Event()
        self._broker_lost_at: float | None = None

    def run(self) -> None:
        """Consume until ``stop()``, reconnecting whenever the broker goes away."""
        waits = outage_waits()
        while not self._stopping.is_set():
            try:
                self._consume()
            except _BROKER_LOST as exc:
                self.ready.clear()
                if self._broker_lost_at is None:  # consuming since the last loss: a new outage
                    self._broker_lost_at = time.monotonic()
                    waits = outage_waits()
                wait = next(waits)
                level = loss_level(exc, time.monotonic() - self._broker_lost_at)
                log.log(level, "broker connection lost (%r); reconnecting in %.1fs", exc, wait)
                self._stopping.wait(wait)

    def stop(self) -> None:
        """Ask the consumer to finish the batch in hand and return; safe from any thread."""
        self._stopping.set()
        connection = self._connection
        if connection is not None and connection.is_open:
            # Wakes the consumer from waiting for messages; if the connection is already going,
            # run() sees _stopping and returns anyway.
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.add_callback_threadsafe(lambda: None)

    def _consume(self) -> None:
        self._connection = self._connect()
        self._arrived = []  # messages of a lost connection are the broker's to redeliver
        try:
            channel = self._connection.channel()
            self._channel = channel
            declare_topology(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self._prefetch)
            channel.basic_consume(TRANSFERS_QUEUE, self._on_message)
            # pika drops the broker's cancelling of a consumer (as when caf.transfers is
            # deleted) unless asked; the worker would wait on, ready, for messages that never
            # come. A new connection declares the queue again.
            cancelled = []
            channel.add_on_cancel_callback(cancelled.append)
            self._broker_lost_at = None
            self.ready.set()
            log.info("worker consuming from %s", TRANSFERS_QUEUE)
            while not self._stopping.is_set():
                batch = self._gather()
                if batch:
                    self._handle(channel, batch)
                if cancelled:
                    raise pika.exceptions.ConsumerCancelled
        finally:
            self.ready.clear()
            if self._connection.is_open:
                self._connection.close()

    def _connect(self) -> pika.BlockingConnection:
        """A new connection, or AMQPConnectionError with the reason there is none.

        pika raises some failures to connect as they came: a broker name that does not resolve
        (``socket.gaierror``), a TLS handshake that fails (``ssl.SSLError``), a broker that
        takes the connection and never answers (``AMQPConnectorStackTimeout``). Each may pass,
        as DNS, certificates and brokers come back, so the worker waits and tries again as it
        does for a refused connection, rather than exiting with a traceback.
        """
        try:
            return pika.BlockingConnection(self._parameters)
        except (OSError, AMQPConnectorException) as exc:
            raise pika.exceptions.AMQPConnectionError(exc) from exc

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        self._arrived.append(_Message(method, properties, body))

    def _gather(self) -> list[_Message]:
        """The next batch: what has arrived (waiting only while nothing has), as read now."""
        # time_limit=0 reads what the broker has already sent, without waiting for more.
        wait = 0 if self._arrived else IDLE_WAIT_SECONDS
        self._connection.process_data_events(time_limit=wait)
        batch, self._arrived = self._arrived[: self._batch], self._arrived[self._batch :]
        return batch

    @own_log_context
    def _handle(self, channel: BlockingChannel, batch: list[_Message]) -> None:
        """Store a batch's outcomes, dead-letter what must be, then acknowledge it at once."""
        try:
            outcomes = self._receive_holding(batch)
        except _Stopping:
            return  # not acknowledged: the broker gives them to the next consumer
        received = [outcome for outcome in outcomes if isinstance(outcome, Received)]
        stored = sum(outcome.needs_delivery for outcome in received)
        held = [outcome.held for outcome in received if outcome.held is not None]
        if stored and self._delivery is not None:
            # Stored, so handed over before any call to the broker, which may fail: held
            # envelopes not handed over would wait out their lease.
            self._delivery.take(held)
            if len(held) < stored:
                self._delivery.wake()  # some must be claimed when their turn comes
        settled = []
        try:
            for message, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    set_event_id(None)  # not the previous message's
                    if self._processing_failed(channel, message, outcome):
                        settled.append(message)
                    continue
                set_event_id(outcome.event_id)
                if outcome.rejection is not None:
                    self._dead_letter(
                        channel, message, outcome.reason, outcome.rejection, outcome.event_id
                    )
                    log.warning("dead-lettered: %s", outcome.reason)
                settled.append(message)
        except _Stopping:
            pass  # the message held and those after it go to the next consumer
        if settled:
            # Delivery tags grow along the channel, so this settles exactly the batch's messages
            # but those handed back (already settled by their nack); later arrivals are higher.
            channel.basic_ack(settled[-1].method.delivery_tag, multiple=True)

    def _receive_holding(self, batch: list[_Message]) -> list[Received | Exception]:
        """Run the relay, waiting out a database outage while keeping the broker connection."""
        senders: dict[str | None, Sender] = {}
        messages = []
        for message in batch:
            user_id = message.properties.user_id
            if user_id not in senders:
                senders[user_id] = self._senders(user_id)
            messages.append((message.body, senders[user_id]))
        for wait in outage_waits():
            lease = self._delivery.lease() if self._delivery is not None else None
            try:
                return self._relay.receive_many(messages, lease=lease)
            except StoreUnavailable as exc:
                if not self._stopping.is_set():
                    log.warning(
                        "store unavailable, holding %d messages for %.1fs: %s",
                        len(batch),
                        wait,
                        exc,
                    )
                    self._pause(wait)
                if self._stopping.is_set():
                    raise _Stopping from exc

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` serving the broker connection (its heartbeats), but no longer once
        asked to stop: a worker told to stop during an outage goes at once, its held messages
        unacknowledged for the next consumer, rather than at the end of a backoff of up to
        LONGEST_OUTAGE_WAIT_SECONDS."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            self._connection.sleep(min(left, STOP_CHECK_SECONDS))

    def _processing_failed(self, channel, message: _Message, exc: Exception) -> bool:
        """Hand the message back, or dead-letter it on its last delivery; True if dead-lettered."""
        deliveries = _earlier_deliveries(message) + 1
        if deliveries < DELIVERY_LIMIT:
            log.error(
                "processing failed (delivery %d); message requeued: %s",
                deliveries,
                where_it_failed(exc),
            )
            channel.basic_nack(message.method.delivery_tag, requeue=True)
            return False
        reason = f"Processing failed on each of {deliveries} deliveries; last: {exc!r}"[:1000]
        log.error("dead-lettered a message that cannot be processed: %s", where_it_failed(exc))
        event_id = self._relay.readable_event_id(message.body)
        self._dead_letter(channel, message, reason, PROCESSING_FAILED, event_id)
        # The error may quote the event, so the audit, which outlives the dead letter, names
        # where to find it instead.
        self._relay.record_processing_failed(
            f"Processing failed on each of {deliveries} deliveries; the last error is in the "
            "dead letter's reason.",
            self._senders(message.properties.user_id),
            event_id,
        )
        return True

    def _dead_letter(
        self, channel, message: _Message, reason: str, rejection: str, event_id: str | None
    ) -> None:
        """Publish to caf.dead, confirmed by the broker before the original is acknowledged.

        Mandatory, so that a confirm means a queue took the copy: if caf.dead lost its queue
        or binding since the worker declared them, they are declared again and the copy sent
        once more; failing again, it raises, and the original stays unacknowledged. The copy
        keeps the original's properties and what it can of the publisher's headers, none of
        them passing as the relay's (``service.amqp_headers``); the frame it must fit is the
        one the worker asks for, which RabbitMQ grants unless set lower.

        A copy the broker refuses (a nack: caf.dead full under a ``reject-publish`` length
        limit) is sent again with backoff while the original is held, as in a database outage.
        Dropping the connection instead would hand back the whole prefetch window each time,
        and the broker would dead-letter every message in it, unread, once its deliveries
        reached caf.transfers' delivery limit.

        The copy names ``event_id``, if one could be read, so that an operator can go from the
        letter to the refusal's audit record and back; and the exchange the original came
        through, which its routing key alone does not tell (the queue's name, for one sent
        straight to it).
        """
        ours = {
            REASON_HEADER: reason,
            REJECTION_HEADER: str(rejection),
            EXCHANGE_HEADER: message.method.exchange,
        }
        if event_id is not None:
            ours[EVENT_ID_HEADER] = event_id
        copy = dead_letter_properties(message.properties, ours, self._parameters.frame_max)
        route = (DEAD_EXCHANGE, message.method.routing_key, message.body, copy)
        for wait in outage_waits():
            try:
                self._publish_routed(channel, route)
                return
            except pika.exceptions.NackError as exc:
                if not self._stopping.is_set():
                    log.error(
                        "caf.dead refused a dead letter (is it full?); holding the message, "
                        "sending it again in %.1fs",
                        wait,
                    )
                    self._pause(wait)
                if self._stopping.is_set():
                    raise _Stopping from exc

    @staticmethod
    def _publish_routed(channel: BlockingChannel, route: tuple) -> None:
        """Publish, confirmed; a copy no queue took goes once more, the topology declared again."""
        try:
            channel.basic_publish(*route, mandatory=True)
        except pika.exceptions.UnroutableError:
            log.warning("caf.dead routed nothing; declaring the topology again")
            declare_topology(channel)
            channel.basic_publish(*route, mandatory=True)
