"""The raw relay caf-relay is measured against: pika alone, with no validation, signing or store.

It does the least a relay that loses nothing must do: consume with the worker's prefetch window,
republish each message persistently with publisher confirms, and acknowledge only once the broker
has confirmed the copy. caf-relay's throughput divided by this one's is then the price of all it
does beyond moving the message. Run as its own process (``python bench/baseline.py URL IN OUT
PREFETCH``) so that its CPU time and memory are measured as the worker's are; it imports nothing
but pika, since it stands for the cheapest possible relay.
"""

from __future__ import annotations

import signal
import sys

import pika


def relay(broker_url: str, source: str, target: str, prefetch: int) -> None:
    """Move every message from ``source`` to ``target`` until SIGTERM, then close cleanly."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_qos(prefetch_count=prefetch)

    def forward(ch, method, properties, body: bytes) -> None:
        # With confirms on, basic_publish returns only once the broker has the copy.
        ch.basic_publish(
            "",
            target,
            body,
            pika.BasicProperties(
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
            ),
            mandatory=True,
        )
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(source, forward)
    signal.signal(
        signal.SIGTERM, lambda *_: connection.add_callback_threadsafe(channel.stop_consuming)
    )
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    relay(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
