"""What a publisher set on a message, read and copied to its dead letter without stopping the
worker.

Reading: pika 1.4.4 decodes a header of type timestamp with ``datetime.fromtimestamp``, which
raises for a time past year 9999 (a time in milliseconds, as some clients send one) or past the
platform's ``time_t``. Raised while a frame is decoded, the error tears the connection down, and
the message, delivered again on each new connection, stopped intake for every message behind it
(pika issue 1698, fixed after 1.4.4). ``read_headers_as_sent`` makes such a header its whole
seconds instead, as pika's fix does. pika 1.4.4 also reads a float or a double as its whole
part (0.75 as 0), and has no type to write a fraction back as: ``read_headers_as_sent`` reads
each as the float it is and writes a float as a double, so that a dead letter carries it as
sent.

Copying: a dead letter carries the original as it was sent, so that an operator can send it
again once fixed, with the relay's reason. Its properties are copied, but for two it cannot
carry as its own, which go as headers instead: ``user_id`` (the broker lets a connection send
only its own login there) and ``expiration`` (caf.dead would drop the letter when it ran out).
The publisher's headers go with them, but for three kinds:

- one named ``x-caf-...``: the copy's headers of that name are the relay's, and a publisher's
  could pass as one (another event's id on a letter whose own could not be read);
- a value pika decodes but cannot encode again (a timestamp of 2**63 seconds or more becomes
  an integer too long for any AMQP type): the copy could not be sent, and the original was
  never acknowledged;
- all of them, if they filled the original's frame and leave no room for the reason.

Those are left out of the copy, which counts them in ``x-caf-headers-left-out``.
"""

from __future__ import annotations

import struct
from typing import Any

import pika
import pika.data
import pika.exceptions
import pika.spec

CAF_PREFIX = "x-caf-"  # the relay's headers on a dead letter; a publisher's are left out
LEFT_OUT_HEADER = "x-caf-headers-left-out"
# The original's properties the copy carries as they were sent; whatever the original's
# delivery mode, the copy is persistent.
AS_SENT = (
    "content_type",
    "content_encoding",
    "priority",
    "correlation_id",
    "reply_to",
    "message_id",
    "timestamp",
    "type",
    "app_id",
    "cluster_id",
)
# The two it cannot carry as its own, carried as headers instead.
USER_ID_HEADER = "x-caf-user-id"
EXPIRATION_HEADER = "x-caf-expiration"
AS_HEADERS = {"user_id": USER_ID_HEADER, "expiration": EXPIRATION_HEADER}
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
    """The properties of ``properties``' dead-letter copy: persistent, with the original's
    properties, ``ours``, and as many of the publisher's headers as can go with them."""
    headers = properties.headers or {}
    kept = {
        key: value
        for key, value in headers.items()
        if not _named_as_ours(key) and _encodable(value)
    }
    as_sent = {name: getattr(properties, name) for name in AS_SENT}
    moved = {
        header: getattr(properties, name)
        for name, header in AS_HEADERS.items()
        if getattr(properties, name) is not None
    }

    def copy(publishers: dict[Any, Any]) -> pika.BasicProperties:
        left_out = len(headers) - len(publishers)
        return pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={
                **publishers,
                **moved,
                **ours,
                **({LEFT_OUT_HEADER: left_out} if left_out else {}),
            },
            **as_sent,
        )

    candidate = copy(kept)
    if len(b"".join(candidate.encode())) + _HEADER_FRAME_OVERHEAD <= frame_max:
        return candidate
    return copy({})


def _named_as_ours(key: str | bytes) -> bool:
    """Whether a header's name, in any case, is one of the relay's: pika reads a name that is
    not UTF-8 as bytes, which must not stop the copy either."""
    name = key if isinstance(key, str) else key.decode("utf-8", errors="replace")
    return name.lower().startswith(CAF_PREFIX)


def _encodable(value: Any) -> bool:
    try:
        pika.data.encode_value([], value)
    except (struct.error, pika.exceptions.UnsupportedAMQPFieldException):
        return False
    return True
