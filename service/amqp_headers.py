"""Header tables a publisher chose, read and copied without stopping the worker.

Reading: pika 1.4.4 decodes a header of type timestamp with ``datetime.fromtimestamp``, which
raises for a time past year 9999 (a time in milliseconds, as some clients send one) or past the
platform's ``time_t``. Raised while a frame is decoded, the error tears the connection down, and
the message, delivered again on each new connection, stopped intake for every message behind it
(pika issue 1698, fixed after 1.4.4). ``read_any_timestamp`` makes such a header its whole
seconds instead, as pika's fix does.

Copying: a dead letter carries the publisher's headers with the relay's reason, but pika
decodes some values it cannot encode again (a double of 2**63 or more becomes an integer too
long for any AMQP type), and headers that filled the original's frame leave no room for the
reason: the copy could then not be sent, and the original was never acknowledged. Those of the
publisher's headers are left out of the copy, which counts them in ``x-caf-headers-left-out``.
"""

from __future__ import annotations

import struct
from typing import Any

import pika
import pika.data
import pika.exceptions
import pika.spec

LEFT_OUT_HEADER = "x-caf-headers-left-out"
TIMESTAMP = b"T"
# A content header frame: type, channel and size (7), then class, weight and body size (12),
# the properties, and the frame-end octet.
_HEADER_FRAME_OVERHEAD = pika.spec.FRAME_HEADER_SIZE + 12 + pika.spec.FRAME_END_SIZE
_pika_decode_value = pika.data.decode_value


def _decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
    try:
        return _pika_decode_value(encoded, offset)
    except (OverflowError, ValueError, OSError):
        if encoded[offset : offset + 1] != TIMESTAMP:
            raise
        (seconds,) = struct.unpack_from(">Q", encoded, offset + 1)
        return seconds, offset + 1 + 8


def read_any_timestamp() -> None:
    """Make pika decode every timestamp header, as a datetime or, out of range, its seconds.

    pika's table decoder looks ``decode_value`` up in its module for each value, nested ones
    included, so replacing it there covers every header table pika reads."""
    pika.data.decode_value = _decode_value


def dead_letter_properties(
    properties: pika.BasicProperties, ours: dict[str, str], frame_max: int
) -> pika.BasicProperties:
    """The properties of ``properties``' dead-letter copy: persistent, with the content type,
    message id and ``ours``, and as many of the publisher's headers as can go with them."""
    headers = properties.headers or {}
    kept = {key: value for key, value in headers.items() if _encodable(value)}

    def copy(publishers: dict[Any, Any]) -> pika.BasicProperties:
        left_out = len(headers) - len(publishers)
        return pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=properties.content_type,
            message_id=properties.message_id,
            headers={**publishers, **ours, **({LEFT_OUT_HEADER: left_out} if left_out else {})},
        )

    candidate = copy(kept)
    if len(b"".join(candidate.encode())) + _HEADER_FRAME_OVERHEAD <= frame_max:
        return candidate
    return copy({})


def _encodable(value: Any) -> bool:
    try:
        pika.data.encode_value([], value)
    except (struct.error, pika.exceptions.UnsupportedAMQPFieldException):
        return False
    return True
