"""Delivers by publishing the JWS to a borough's own AMQP broker.

Each envelope is published persistent and ``mandatory`` with publisher confirms, so the call
returns only once the broker has taken responsibility for it and routed it to a queue. The
connection is kept between deliveries; one that has dropped (idle timeout, broker restart) is
reopened once before the delivery counts as failed.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
from marshmallow import Schema, ValidationError, fields, validate, validates

from adapters.base import JOSE_JSON, Adapter, DeliveryFailed, OutboundEnvelope, Receipt

EVENT_ID_HEADER = "x-caf-event-id"
_CONNECTION_LOST = (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError)


class AmqpSettingsSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(max=2048),
        metadata={"description": "amqp:// or amqps:// URL with no credentials in it."},
    )
    exchange = fields.String(required=True, validate=validate.Length(max=255))
    routing_key = fields.String(required=True, validate=validate.Length(max=255))
    declare_exchange = fields.Boolean(
        load_default=False,
        metadata={"description": "Declare the exchange (durable, topic) before publishing."},
    )

    @validates("url")
    def _url_without_credentials(self, value: str, **_: Any) -> None:
        parts = urlsplit(value)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValidationError("Must be an amqp:// or amqps:// URL with a host.")
        if parts.username or parts.password:
            raise ValidationError("Must not hold credentials; give them as secrets.")
        if parts.query or parts.fragment:
            # pika reads connection options from the query, TLS verification and retries among
            # them, which would undo the bounds set on every attempt.
            raise ValidationError("Must have no query: the relay sets the connection's options.")


class AmqpSecretsSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=255))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class AmqpAdapter(Adapter):
    settings_schema = AmqpSettingsSchema
    secrets_schema = AmqpSecretsSchema

    def __init__(
        self,
        parameters: pika.URLParameters,
        exchange: str,
        routing_key: str,
        declare_exchange: bool,
    ) -> None:
        self._parameters = parameters
        self._exchange = exchange
        self._routing_key = routing_key
        self._declare_exchange = declare_exchange
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, settings: dict[str, Any], secrets: dict[str, Any]) -> AmqpAdapter:
        parameters = pika.URLParameters(settings["url"])
        parameters.credentials = pika.PlainCredentials(secrets["username"], secrets["password"])
        # Bound every wait, so one attempt ends within the relay's delivery lease.
        parameters.socket_timeout = 10
        parameters.blocked_connection_timeout = 30
        return cls(
            parameters, settings["exchange"], settings["routing_key"], settings["declare_exchange"]
        )

    def deliver(self, envelope: OutboundEnvelope) -> Receipt:
        with self._lock:
            try:
                self._publish_reconnecting(envelope)
            except _CONNECTION_LOST as exc:
                self._drop()
                raise DeliveryFailed(
                    f"Broker {self._where()} unreachable: {type(exc).__name__}", retryable=True
                ) from exc
            except pika.exceptions.UnroutableError as exc:
                raise DeliveryFailed(
                    f"Broker {self._where()} routed nothing for exchange {self._exchange!r} "
                    f"and key {self._routing_key!r}",
                    retryable=True,
                ) from exc
            except pika.exceptions.NackError as exc:
                raise DeliveryFailed(
                    f"Broker {self._where()} refused the envelope", retryable=True
                ) from exc
            except pika.exceptions.ChannelClosedByBroker as exc:
                self._drop()
                raise DeliveryFailed(
                    f"Broker {self._where()} closed the channel: {exc.reply_code} {exc.reply_text}",
                    retryable=True,
                ) from exc
        return Receipt(f"confirmed by {self._where()} exchange {self._exchange!r}")

    def _publish_reconnecting(self, envelope: OutboundEnvelope) -> None:
        """Publish, on a new connection if the one kept open was lost since the last envelope."""
        try:
            self._publish(envelope)
        except _CONNECTION_LOST:
            self._drop()
            self._publish(envelope)

    def _publish(self, envelope: OutboundEnvelope) -> None:
        channel = self._open_channel()
        channel.basic_publish(
            self._exchange,
            self._routing_key,
            envelope.jws.encode("utf-8"),
            pika.BasicProperties(
                content_type=JOSE_JSON,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=envelope.envelope_id,
                headers={EVENT_ID_HEADER: envelope.event_id},
            ),
            mandatory=True,
        )

    def _open_channel(self):
        if self._channel is None or not self._channel.is_open:
            if self._connection is None or not self._connection.is_open:
                self._connection = pika.BlockingConnection(self._parameters)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            if self._declare_exchange:
                self._channel.exchange_declare(self._exchange, "topic", durable=True)
        return self._channel

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()

    def _where(self) -> str:
        return f"{self._parameters.host}:{self._parameters.port}"

    def close(self) -> None:
        with self._lock:
            self._drop()
