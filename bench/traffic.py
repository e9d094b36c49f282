"""The benchmark's traffic: realistic events in, a publisher at full speed or at a fixed rate,
and a collector noting when each event comes out the other side.

Timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for the whole machine), taken in
this process on both sides, so no clock skew enters a latency.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator

import pika

from bench.isolation import BROKER_USER, Broker
from contracts.common import LONG_TEXT, MAX_LIST
from tests.support import examples

SENDER = "E09000012"  # Hackney, the sender of tests.support.examples.routine
# Receiving boroughs; each differs from the sender.
RECIPIENTS = ("E09000019", "E09000007", "E09000028", "E09000022", "E09000030")
CASES = 400
CONTENT_TYPE = "application/cloudevents+json"
COLLECT_POLL_SECONDS = 0.05


def routine_events(prefix: str, count: int) -> dict[str, bytes]:
    """Routine transfers under the pan-London ISP (~2 KB each), by event id in publish order.

    Spread over many cases and five recipients, as a borough's bulk sync would be, so that
    delivery is not held up by the one-at-a-time order of a single case.
    """
    return {f"{prefix}-{n:05d}": examples.encode(_routine(prefix, n)) for n in range(count)}


def large_routine_events(prefix: str, count: int, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    """Routine transfers as large as the relay takes (just under ``max_bytes``), one at a time,
    with their event ids.

    Their plan holds actions of the longest text the contract allows, partly outside ASCII and
    sent as UTF-8, as a case with a long history would be; made as they are taken, so that only
    the relay's copies count towards the memory measured.
    """
    filler = ("Revue à l'école, suivi hebdomadaire. " * (LONG_TEXT // 36 + 1))[:LONG_TEXT]
    action = {"action": filler, "by_whom": "Class teacher", "by_when": "2027-01-31"}
    room = max_bytes - len(examples.encode(_routine(prefix, 0))) - 64  # longer ids, commas
    fits = min(MAX_LIST, room // len(json.dumps(action, ensure_ascii=False).encode()))
    for n in range(count):
        document = _routine(prefix, n)
        document["data"]["case"]["plan"]["actions"] = [action] * fits
        yield document["id"], json.dumps(document, ensure_ascii=False).encode()


def _routine(prefix: str, n: int) -> dict:
    """The ``n``-th routine transfer of a run: its case and recipient taken in turn."""
    return examples.routine(
        f"{prefix}-{n:05d}", case=f"CAF-BENCH-{n % CASES:04d}", to=RECIPIENTS[n % len(RECIPIENTS)]
    )


def event_id_of_event(body: bytes) -> str:
    """The event id of a message the raw relay passed on unchanged."""
    return json.loads(body)["id"]


def event_id_of_envelope(body: bytes) -> str:
    """The event id inside a caf-relay envelope, read from the JWS payload without verifying.

    Verifying is the receiver's cost, not the relay's; the end-to-end tests verify envelopes.
    """
    payload = json.loads(body)["payload"]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["event_id"]


class Publisher:
    """A case system publishing persistently to the relay's input over one connection.

    Without publisher confirms: a confirm per message would make the publisher, not the relay,
    the bottleneck of the throughput run, and would add its round trip to every latency. Keep
    the connection open until every event has come out: without confirms, RabbitMQ may drop
    the last few messages published just before the channel closes (seen here with the quorum
    queue, under load: the last 2 of 2,000 gone, from both queues).
    """

    def __init__(self, broker: Broker, exchange: str, routing_key: str) -> None:
        self._broker = broker
        self._exchange = exchange
        self._routing_key = routing_key
        # user_id as a case system's account sends it: the relay takes it as the sender.
        self._properties = pika.BasicProperties(
            content_type=CONTENT_TYPE,
            delivery_mode=pika.DeliveryMode.Persistent,
            user_id=BROKER_USER,
        )
        self._connection: pika.BlockingConnection | None = None
        self._channel = None

    def __enter__(self) -> Publisher:
        self._connection = pika.BlockingConnection(pika.URLParameters(self._broker.url))
        self._channel = self._connection.channel()
        return self

    def __exit__(self, *_) -> None:
        if self._connection.is_open:
            self._connection.close()

    def burst(self, bodies: Iterable[bytes]) -> float:
        """Publish all at once, as a bulk sync does; returns when the first one went."""
        started = time.monotonic()
        for body in bodies:
            self._publish(body)
        return started

    def paced(self, bodies: dict[str, bytes], rate: float) -> tuple[dict[str, float], float]:
        """Open loop: event n is due at start + n / rate, however late earlier ones came out.

        A closed loop (publish the next when the last arrives) would slow down with the relay
        and hide its queueing delay. Returns each event's scheduled time, and how far behind its
        schedule the publisher itself fell at worst (the latencies count from the schedule).
        """
        start = time.monotonic() + 0.01
        scheduled, worst_lag = {}, 0.0
        for n, (event_id, body) in enumerate(bodies.items()):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                worst_lag = max(worst_lag, -delay)
            self._publish(body)
            scheduled[event_id] = due
        return scheduled, worst_lag

    def _publish(self, body: bytes) -> None:
        self._channel.basic_publish(self._exchange, self._routing_key, body, self._properties)


class Collector:
    """Consumes the relay's output queue on a thread and connection of its own.

    It notes when each event id first arrives (consumed with auto-ack, so the broker pushes
    without waiting), counts the expected ones as they come, and counts repeats.
    """

    def __init__(
        self,
        broker: Broker,
        queue: str,
        event_id_of: Callable[[bytes], str],
        expected: Collection[str],
    ) -> None:
        self._broker = broker
        self._queue = queue
        self._event_id_of = event_id_of
        self._expected = frozenset(expected)
        self.arrivals: dict[str, float] = {}
        self.arrived = 0
        self.duplicates = 0
        self.strays = 0
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def __enter__(self) -> Collector:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the collector did not start consuming")
        self._raise_if_failed()
        return self

    def __exit__(self, *_) -> None:
        self._stopping.set()
        self._thread.join(30)

    def wait(self, timeout: float, stall: float) -> int:
        """Until every expected event arrived, or none came for ``stall`` s; how many arrived."""
        deadline = time.monotonic() + timeout
        seen, last_change = -1, time.monotonic()
        while self.arrived < len(self._expected):
            self._raise_if_failed()
            now = time.monotonic()
            if self.arrived != seen:
                seen, last_change = self.arrived, now
            if now - last_change > stall or now > deadline:
                break
            time.sleep(0.01)
        return self.arrived

    def last_arrival(self) -> float:
        return max(self.arrivals[i] for i in self._expected if i in self.arrivals)

    def quarter_rates(self, started: float) -> tuple[float, float]:
        """Events/s over the first and the last quarter of the arrivals.

        Whether the rate held over the burst: a relay whose cost per event grew with what it
        has stored would slow down as the run goes on, which the mean over the run hides.
        """
        times = sorted(self.arrivals[i] for i in self._expected if i in self.arrivals)
        quarter = len(times) // 4
        if quarter < 1:
            return 0.0, 0.0
        first = quarter / max(times[quarter - 1] - started, 1e-9)
        last = quarter / max(times[-1] - times[-quarter - 1], 1e-9)
        return first, last

    def _run(self) -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self._broker.url))
            try:
                channel = connection.channel()
                channel.basic_consume(self._queue, self._on_message, auto_ack=True)
                self._ready.set()
                while not self._stopping.is_set():
                    connection.process_data_events(time_limit=COLLECT_POLL_SECONDS)
            finally:
                if connection.is_open:
                    connection.close()
        except BaseException as exc:  # reported to the waiting thread, which raises it
            self._error = exc
            self._ready.set()

    def _on_message(self, _channel, _method, _properties, body: bytes) -> None:
        now = time.monotonic()
        event_id = self._event_id_of(body)
        if event_id in self.arrivals:
            self.duplicates += 1
        elif event_id in self._expected:
            self.arrivals[event_id] = now
            self.arrived += 1
        else:
            self.strays += 1

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the collector failed: {self._error!r}") from self._error


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually observed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
