"""Delivers by publishing the JWS to a borough's own AMQP broker.

Each envelope is published persistent and ``mandatory`` with publisher confirms, so it counts
as delivered only once the broker has taken responsibility for it and routed it to a queue.
The envelopes the relay has for the borough go together, confirmed together
(``adapters.amqp_publisher``). The connection is kept between deliveries; when it could not be
opened, or went before the confirms, the envelopes not confirmed are sent once more on a new
one before they count as failed (the borough may then get some twice, under their envelope ids).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pika
from marshmallow import Schema, ValidationError, fields, validate, validates

from adapters.amqp_publisher import CLOSE_SECONDS, ConfirmedPublisher, Message, Unconfirmed, Why
from adapters.base import (
    JOSE_JSON,
    LONGEST_ATTEMPT_SECONDS,
    DeliveryFailed,
    GroupAdapter,
    OutboundEnvelope,
    Receipt,
)
from adapters.urls import readable_url

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "x-caf-event-id"
# Each connection's bounds: to connect, to open (TCP, TLS, AMQP), to be blocked by the broker.
SOCKET_SECONDS = 10
OPEN_SECONDS = 15
BLOCKED_SECONDS = 30
# A delivery's time, both tries included; a connection that will not close in time is left to
# end on its own, so the attempt still ends within LONGEST_ATTEMPT_SECONDS.
ATTEMPT_SECONDS = LONGEST_ATTEMPT_SECONDS - CLOSE_SECONDS


def _short_string(value: str) -> None:
    """AMQP sends names as short strings, of 255 bytes at most: a longer one in UTF-8 (fewer
    characters, some of them not ASCII) would fail every delivery as if the broker were down."""
    if len(value.encode("utf-8", "surrogatepass")) > 255:
        raise ValidationError("Must be at most 255 bytes in UTF-8.")


class AmqpSettingsSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(max=2048),
        metadata={"description": "amqp:// or amqps:// URL with no credentials in it."},
    )
    exchange = fields.String(required=True, validate=_short_string)
    routing_key = fields.String(required=True, validate=_short_string)
    declare_exchange = fields.Boolean(
        load_default=False,
        metadata={"description": "Declare the exchange (durable, topic) before publishing."},
    )

    @validates("url")
    def _url_without_credentials(self, value: str, **_: Any) -> None:
        parts = readable_url(value)
        if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValidationError(
                "Must be an amqp:// or amqps:// URL with a host, and a port (if any) from 1 to "
                "65535."
            )
        if parts.username or parts.password:
            raise ValidationError("Must not hold credentials; give them as secrets.")
        try:  # as the socket will look the host up
            parts.hostname.encode("idna")
        except UnicodeError as exc:
            raise ValidationError(
                "Must have a host name valid in IDNA, each label 1 to 63 characters."
            ) from exc
        if parts.query or parts.fragment:
            # pika reads connection options from the query, TLS verification and retries among
            # them, which would undo the bounds set on every attempt.
            raise ValidationError("Must have no query: the relay sets the connection's options.")


class AmqpSecretsSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=255))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class AmqpAdapter(GroupAdapter):
    settings_schema = AmqpSettingsSchema
    secrets_schema = AmqpSecretsSchema

    def __init__(
        self,
        parameters: pika.URLParameters,
        exchange: str,
        routing_key: str,
        declare_exchange: bool,
        *,
        attempt_seconds: float = ATTEMPT_SECONDS,
    ) -> None:
        self._where = f"{parameters.host}:{parameters.port}"
        self._exchange = exchange
        self._routing_key = routing_key
        self._attempt_seconds = attempt_seconds
        self._publisher = ConfirmedPublisher(
            parameters, exchange, routing_key, declare_exchange=declare_exchange
        )
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, settings: dict[str, Any], secrets: dict[str, Any]) -> AmqpAdapter:
        parameters = pika.URLParameters(settings["url"])
        parameters.credentials = pika.PlainCredentials(secrets["username"], secrets["password"])
        # Bound every wait, so one attempt ends within the relay's delivery lease.
        parameters.socket_timeout = SOCKET_SECONDS
        parameters.stack_timeout = OPEN_SECONDS
        parameters.blocked_connection_timeout = BLOCKED_SECONDS
        return cls(
            parameters, settings["exchange"], settings["routing_key"], settings["declare_exchange"]
        )

    def deliver_group(
        self, envelopes: Sequence[OutboundEnvelope]
    ) -> list[Receipt | DeliveryFailed]:
        """Publish the envelopes together; those the broker could not be reached for, or whose
        connection went before their confirm, once more on a new connection, in the time left.
        A broker too slow to confirm in time is not sent them again now: the outbox's retry
        schedule gives it time."""
        messages = [_message(envelope) for envelope in envelopes]
        # One group at a time on the connection. The wait for it counts against the attempt,
        # which must end within the delivery lease, but lasts half the attempt at most, so a
        # group sent has the other half to be confirmed; one not sent goes again on its schedule.
        deadline = time.monotonic() + self._attempt_seconds
        if not self._lock.acquire(timeout=self._attempt_seconds / 2):
            busy = Unconfirmed(
                Why.NO_TIME, "was not tried: another group for this borough held the connection"
            )
            return [self._result(busy)] * len(messages)
        try:
            outcomes = self._publisher.publish(messages, deadline)
            again = [i for i, outcome in enumerate(outcomes) if _worth_again(outcome)]
            if again:
                log.warning(
                    "broker %s %s; sending %d of %d envelopes again on a new connection",
                    self._where,
                    outcomes[again[0]].reason,
                    len(again),
                    len(messages),
                )
                retried = self._publisher.publish([messages[i] for i in again], deadline)
                for i, outcome in zip(again, retried, strict=True):
                    outcomes[i] = outcome
        finally:
            self._lock.release()
        refused = next((o for o in outcomes if o is not None and o.why == Why.LOGIN_REFUSED), None)
        if refused is not None:  # pika's own line for it is dropped (service.logs)
            log.warning("broker %s %s", self._where, refused.reason)
        return [self._result(outcome) for outcome in outcomes]

    def _result(self, outcome: Unconfirmed | None) -> Receipt | DeliveryFailed:
        if outcome is None:
            return Receipt(f"confirmed by {self._where} exchange {self._exchange!r}")
        if outcome.why == Why.RETURNED:
            said = f"routed nothing for exchange {self._exchange!r} and key {self._routing_key!r}"
        elif outcome.why == Why.REFUSED:
            said = "refused the envelope"
        else:
            said = outcome.reason
        # Every failure may pass: a broker back up, a queue bound again, an exchange declared.
        return DeliveryFailed(f"Broker {self._where} {said}", retryable=True)

    def close(self) -> None:
        with self._lock:
            self._publisher.close()


def _message(envelope: OutboundEnvelope) -> Message:
    return Message(
        envelope.jws.encode("utf-8"),
        pika.BasicProperties(
            content_type=JOSE_JSON,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=envelope.envelope_id,
            headers={EVENT_ID_HEADER: envelope.event_id},
        ),
    )


def _worth_again(outcome: Unconfirmed | None) -> bool:
    return outcome is not None and outcome.worth_another_connection
