"""Publishes a group of messages to one RabbitMQ broker and waits for their confirms together.

pika's ``BlockingChannel`` waits for each publish's confirm before it sends the next message:
a round trip per message, and about 170 microseconds of the relay's CPU each on the bench's
machine, against 35 to 55 in groups of 8 to 16 published together and confirmed together. So
the amqp adapter publishes on pika's asynchronous ``SelectConnection``, its I/O loop in a
thread of its own: a caller hands over a whole group and waits once. The loop also answers the
broker's heartbeats between deliveries, so a connection kept open stays open.

Messages are mandatory: one that no queue took comes back (``basic.return``, before its ack)
and counts as not delivered. One confirm may ack many (``multiple``). The price of a group in
flight: when its connection is lost before the confirms, every message of it not yet confirmed
is unaccounted for, and sent again, where a message at a time left one.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel

from adapters.pika_errors import socket_error, wrapped

# How long closing a connection may take before it is left to end on its own.
CLOSE_SECONDS = 5.0


@dataclass(frozen=True)
class Message:
    """One message to publish; its ``message_id`` tells it apart if the broker returns it."""

    body: bytes
    properties: pika.BasicProperties


class Why(StrEnum):
    """Why a message was not confirmed."""

    # No connection could be had, or it went before the message's confirm: the broker may
    # have the message or not.
    UNREACHABLE = "unreachable"
    # The broker refused the login or the user's access to the virtual host: the adapter's
    # credentials or the broker's permissions need a person, not another connection now.
    LOGIN_REFUSED = "login_refused"
    CLOSED_BY_BROKER = "closed_by_broker"  # the broker closed the channel, saying why
    RETURNED = "returned"  # no queue took it
    REFUSED = "refused"  # the broker nacked it
    NO_TIME = "no_time"  # not confirmed (or not sent) within the time allowed
    CLOSED = "closed"  # the publisher was closed; nothing more is sent


class Unconfirmed(Exception):
    """A message not confirmed: ``why``, and ``reason`` in words said of the broker ("Broker
    host:port " comes before them)."""

    def __init__(self, why: Why, reason: str) -> None:
        super().__init__(reason)
        self.why = why
        self.reason = reason

    @property
    def worth_another_connection(self) -> bool:
        """Whether a new connection, at once, may do better: the broker was not reached, or
        the connection went. Not when it had no time (a slow broker is not sent more)."""
        return self.why == Why.UNREACHABLE


Outcome = Unconfirmed | None  # None: confirmed


class ConfirmedPublisher:
    """Publishes groups of messages to one exchange and routing key of one broker, with
    publisher confirms, over a connection opened when first needed and kept while it lasts.

    One group at a time: the caller (the amqp adapter) holds a lock around ``publish``.
    Opening a connection is bounded by the parameters' ``stack_timeout``.
    """

    def __init__(
        self,
        parameters: pika.ConnectionParameters,
        exchange: str,
        routing_key: str,
        *,
        declare_exchange: bool,
    ) -> None:
        self._parameters = parameters
        self._exchange = exchange
        self._routing_key = routing_key
        self._declare_exchange = declare_exchange
        self._link: _Link | None = None
        self._closed = False

    def publish(self, messages: Sequence[Message], deadline: float) -> list[Outcome]:
        """Publish ``messages`` in order and wait, until ``deadline`` (``time.monotonic()``) at
        most, for their confirms; for each, None if the broker confirmed it, else why not."""
        if self._closed:
            closed = Unconfirmed(Why.CLOSED, "was not tried: the adapter was closed")
            return [closed] * len(messages)
        if self._link is None or not self._link.usable:
            self._drop()
            if deadline - time.monotonic() < _open_seconds(self._parameters):
                why = Unconfirmed(Why.NO_TIME, "was not tried: no time was left to connect")
                return [why] * len(messages)
            link = _Link(
                self._parameters, self._exchange, self._routing_key, self._declare_exchange
            )
            try:
                link.open()
            except Unconfirmed as failure:
                link.close()
                return [failure] * len(messages)
            self._link = link
        outcomes, in_time = self._link.publish(messages, deadline)
        if not in_time:
            # The broker may confirm them yet, or not: the connection goes, so the next group
            # starts on one with nothing unaccounted for.
            self._drop()
        return outcomes

    def close(self) -> None:
        """Close the connection; from now on nothing is sent (a replaced adapter's last
        group fails, to go again through the new one)."""
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


class _Group:
    """The outcomes of one group's messages, settled by the I/O thread while the caller waits."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes: dict[int, Outcome] = {}
        self._lock = threading.Lock()
        self.settled = threading.Event()
        if size == 0:
            self.settled.set()

    def settle(self, index: int, outcome: Outcome) -> None:
        with self._lock:
            if self.settled.is_set() or index in self._outcomes:
                return
            self._outcomes[index] = outcome
            if len(self._outcomes) == self._size:
                self.settled.set()

    def finish(self, unsettled: Unconfirmed) -> list[Outcome]:
        """Each message's outcome, ``unsettled`` for any still without one; final from now."""
        with self._lock:
            for index in range(self._size):
                self._outcomes.setdefault(index, unsettled)
            self.settled.set()
            return [self._outcomes[index] for index in range(self._size)]


class _Link:
    """One connection and its channel in confirm mode, from opening to closing, with its I/O
    loop in a thread of its own. Once it has ended it stays ended; the publisher opens another.
    """

    def __init__(
        self,
        parameters: pika.ConnectionParameters,
        exchange: str,
        key: str,
        declare_exchange: bool,
    ) -> None:
        self._exchange = exchange
        self._routing_key = key
        self._declare_exchange = declare_exchange
        self._open_seconds = _open_seconds(parameters)
        self._connection = SelectConnection(
            parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)
        # Shared with the I/O thread: whether the channel takes messages, and why it does not;
        # under the lock, whether the loop has ended and the group in hand, failed whole then.
        self._ready = threading.Event()
        self._opening = threading.Event()  # set once the opening succeeded or failed
        self._failure: Unconfirmed | None = None
        self._lock = threading.Lock()
        self._ended = False
        self._group: _Group | None = None
        # The I/O thread's alone: the channel, and what awaits a confirm, by delivery tag.
        self._channel: Channel | None = None
        self._published = 0
        self._waiting: dict[int, tuple[_Group, int, str]] = {}
        self._returned: set[str] = set()

    @property
    def usable(self) -> bool:
        return self._ready.is_set()

    def open(self) -> None:
        """Open the connection and a channel in confirm mode, or raise ``Unconfirmed``.

        pika gives up on its own after ``stack_timeout``; closing a connection while it opens
        would make it log an internal error, so this waits for pika."""
        self._thread.start()
        self._opening.wait(self._open_seconds)
        if not self._ready.is_set():
            raise self._failure or Unconfirmed(Why.UNREACHABLE, "unreachable: no answer")

    def publish(self, messages: Sequence[Message], deadline: float) -> tuple[list[Outcome], bool]:
        """Each message's outcome, and whether they all came before ``deadline``."""
        if deadline <= time.monotonic():
            too_late = Unconfirmed(Why.NO_TIME, "was not tried: no time was left")
            return [too_late] * len(messages), True
        group = _Group(len(messages))
        with self._lock:
            if self._ended:  # since the caller last looked
                return [self._failure] * len(messages), True
            self._group = group
        try:
            self._connection.ioloop.add_callback_threadsafe(lambda: self._send(messages, group))
            in_time = group.settled.wait(max(deadline - time.monotonic(), 0))
        finally:
            with self._lock:
                self._group = None
        late = Unconfirmed(Why.NO_TIME, "did not confirm in the time allowed")
        return group.finish(late), in_time

    def close(self) -> None:
        """Close the connection and wait (a little) for its loop to end."""
        if not self._thread.is_alive():
            return
        self._connection.ioloop.add_callback_threadsafe(self._close)
        self._thread.join(CLOSE_SECONDS)
        if self._thread.is_alive():  # a broker that does not answer the close: leave it be
            self._connection.ioloop.add_callback_threadsafe(self._connection.ioloop.stop)

    def _run(self) -> None:
        try:
            self._connection.ioloop.start()
        finally:
            self._ready.clear()
            self._failure = self._failure or _unreachable(None)
            self._opening.set()
            with self._lock:
                self._ended = True
                group = self._group
            if group is not None:
                group.finish(self._failure)
            self._connection.ioloop.close()  # its wake-up sockets

    # -- on the I/O loop's thread -------------------------------------------------------------

    def _close(self) -> None:
        """Close; the loop stops once the connection has closed."""
        if self._connection.is_closed:
            self._connection.ioloop.stop()
        elif not self._connection.is_closing:
            self._connection.close()

    def _on_connection_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: SelectConnection, error: BaseException) -> None:
        self._failure = _not_opened(error)
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if self._failure is None:
            self._failure = _unreachable(reason)
        self._fail_waiting(self._failure)
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_returned)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame) -> None:
        if self._declare_exchange:
            self._channel.exchange_declare(
                self._exchange, "topic", durable=True, callback=self._on_ready
            )
        else:
            self._on_ready()

    def _on_ready(self, _frame=None) -> None:
        self._ready.set()
        self._opening.set()

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            self._failure = Unconfirmed(
                Why.CLOSED_BY_BROKER,
                f"closed the channel: {reason.reply_code} {reason.reply_text}",
            )
        elif self._failure is None:
            self._failure = _unreachable(reason)  # the connection's going took it
        self._fail_waiting(self._failure)
        # The link ends with its channel; the next group goes on a new one.
        if self._connection.is_open:
            self._connection.close()

    def _send(self, messages: Sequence[Message], group: _Group) -> None:
        for index, message in enumerate(messages):
            if not self._ready.is_set():
                group.settle(index, self._failure or _unreachable(None))
                continue
            self._published += 1
            self._waiting[self._published] = (group, index, message.properties.message_id)
            try:
                self._channel.basic_publish(
                    self._exchange,
                    self._routing_key,
                    message.body,
                    message.properties,
                    mandatory=True,
                )
            except pika.exceptions.AMQPError as exc:
                del self._waiting[self._published]
                group.settle(index, _unreachable(exc))

    def _on_returned(self, _channel, _method, properties: pika.BasicProperties, _body) -> None:
        self._returned.add(properties.message_id)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        if method.multiple:
            tags = [tag for tag in self._waiting if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        acked = isinstance(method, pika.spec.Basic.Ack)
        for tag in tags:
            if (waiting := self._waiting.pop(tag, None)) is None:
                continue
            group, index, message_id = waiting
            if message_id in self._returned:
                self._returned.discard(message_id)
                group.settle(index, Unconfirmed(Why.RETURNED, "routed nothing"))
            elif acked:
                group.settle(index, None)
            else:
                group.settle(index, Unconfirmed(Why.REFUSED, "refused the message"))

    def _fail_waiting(self, why: Unconfirmed) -> None:
        self._ready.clear()
        waiting, self._waiting = self._waiting, {}
        self._returned.clear()
        for group, index, _ in waiting.values():
            group.settle(index, why)


def _open_seconds(parameters: pika.ConnectionParameters) -> float:
    """How long opening a connection may take: pika's own bound, and a moment more."""
    return parameters.stack_timeout + 1


def _not_opened(error: BaseException) -> Unconfirmed:
    """Why a connection could not be opened, in words an admin can act on: the broker's own
    reply where it gave one ("403 ACCESS_REFUSED - Login was refused ..."); pika only guesses
    from the stage the connection closed at."""
    for inner in wrapped(error):
        if isinstance(inner, pika.exceptions.ProbableAuthenticationError):
            said = _broker_reply(inner) or "check the adapter's username and password"
            return Unconfirmed(Why.LOGIN_REFUSED, f"refused the login: {said}")
        if isinstance(inner, pika.exceptions.ProbableAccessDeniedError):
            said = _broker_reply(inner) or "check the url's virtual host and the user's rights"
            return Unconfirmed(Why.LOGIN_REFUSED, f"refused the connection: {said}")
    return _unreachable(error)


def _broker_reply(error: BaseException) -> str | None:
    """The reply code and text the broker closed the connection with, as pika quotes them."""
    found = _REPLY.search(str(error))
    return f"{found['code']} {found['text']}" if found else None


# pika quotes the closing ConnectionClosedByBroker as "(403) 'ACCESS_REFUSED - Login was ...'".
_REPLY = re.compile(r"\((?P<code>\d{3})\) '(?P<text>[^']*)'")


def _unreachable(error: BaseException | None) -> Unconfirmed:
    """The connection could not be had or kept: the error's class, and the operating system's
    words for the socket error under it ("Connection refused"); not pika's texts, which may
    quote the connection's parameters."""
    if error is None:
        return Unconfirmed(Why.UNREACHABLE, "unreachable: connection closed")
    cause = socket_error(error)
    said = f" ({cause})" if cause else ""
    return Unconfirmed(Why.UNREACHABLE, f"unreachable: {type(error).__name__}{said}")
