"""Header tables a publisher chose, read and copied without stopping the worker.

Reading: pika 1.4.4 decodes a header of type timestamp with ``datetime.fromtimestamp``, which
raises for a time past year 9999 (a time in milliseconds, as some clients send one) or past the
platform's ``time_t``. Raised while a frame is decoded, the error tears the connection down, and
the message, delivered again on each new connection, stopped intake for every message behind it
(pika issue 1698, fixed after 1.4.4). ``read_headers_as_sent`` makes such a header its whole
seconds instead, as pika's fix does. pika 1.4.4 also reads a float or a double as its whole
part (0.75 as 0), and has no type to write a fraction back as: ``read_headers_as_sent`` reads
each as the float it is and writes a float as a double, so that a dead letter carries it as
sent.

Copying: a dead letter carries the publisher's headers with the relay's reason, but pika
decodes some values it cannot encode again (a timestamp of 2**63 seconds or more becomes an
integer too long for any AMQP type), and headers that filled the original's frame leave no room
for the reason: the copy could then not be sent, and the original was never acknowledged. Those
of the publisher's headers are left out of the copy, which counts them in
``x-caf-headers-left-out``.
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
FRACTIONS = {b"f": ">f", b"d": ">d"}  # AMQP's float and double
# A content header frame: type, channel and size (7), then class, weight and body size (12),
# the properties, and the frame-end octet.
_HEADER_FRAME_OVERHEAD = pika.spec.FRAME_HEADER_SIZE + 12 + pika.spec.FRAME_END_SIZE
_pika_decode_value = pika.data.decode_value
_pika_encode_value = pika.data.encode_value


def _decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
    fraction = FRACTIONS.get(encoded[offset : offset + 1])
    if fraction is not None:
        (value,) = struct.unpack_from(fraction, encoded, offset + 1)
        return value, offset + 1 + struct.calcsize(fraction)
    try:
        return _pika_decode_value(encoded, offset)
    except (OverflowError, ValueError, OSError):
        if encoded[offset : offset + 1] != TIMESTAMP:
            raise
        (seconds,) = struct.unpack_from(">Q", encoded, offset + 1)
        return seconds, offset + 1 + 8


def _encode_value(pieces: list[bytes], value: Any) -> int:
    if isinstance(value, float):
        pieces.append(b"d" + struct.pack(">d", value))
        return 9
    return _pika_encode_value(pieces, value)


def read_headers_as_sent() -> None:
    """Make pika decode every timestamp header, as a datetime or, out of range, its seconds, and
    every float or double as a float, which it then encodes as a double.

    pika's table codec looks ``decode_value`` and ``encode_value`` up in its module for each
    value, nested ones included, so replacing them there covers every header table pika reads
    or writes."""
    pika.data.decode_value = _decode_value
    pika.data.encode_value = _encode_value


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
