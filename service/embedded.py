"""The embedded default: an in-process queue in place of RabbitMQ, for one-command runs.

It runs the same relay as the AMQP worker and delivers from the same outbox; rejected input is
kept in the store's dead-letter table with its reason, as ``caf.dead`` keeps it on a broker.
A message is only in memory until then, so one whose dead letter cannot be stored is held,
and the letter tried again, until it is: the worker holds a message whose copy ``caf.dead``
refuses the same way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from service.delivery import Deliverer
from service.domain.retry import outage_waits
from service.logs import where_it_failed
from service.relay import Relay
from service.senders import EMBEDDED
from service.store.engine import StoreUnavailable
from service.store.store import Store

log = logging.getLogger(__name__)

WORKER_NAME = "embedded"
EMBEDDED_PROCESSING_FAILED = "Processing failed; see the service log."
T = TypeVar("T")


class InProcessQueue:
    def __init__(self, relay: Relay, deliverer: Deliverer, store: Store) -> None:
        self._relay = relay
        self._deliverer = deliverer
        self._store = store
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._thread = threading.Thread(target=self._consume, name="embedded-queue", daemon=True)
        self._thread.start()

    def publish(self, body: bytes) -> None:
        self._queue.put(body)

    def drain(self) -> None:
        """Wait until everything published so far is processed, then deliver what is due."""
        self._queue.join()
        self._deliverer.deliver_due(WORKER_NAME)

    def _consume(self) -> None:
        while True:
            body = self._queue.get()
            try:
                self._process(body)
            except Exception as exc:  # the thread must outlive any message
                log.error("embedded queue: a message was lost: %s", where_it_failed(exc))
            finally:
                self._queue.task_done()

    def _process(self, body: bytes) -> None:
        try:
            received = _waiting_out_outages(lambda: self._relay.receive(body, sender=EMBEDDED))
        except Exception as exc:
            log.error("embedded queue: processing failed: %s", where_it_failed(exc))
            event_id = self._relay.readable_event_id(body)
            self._keep_dead_letter(body, EMBEDDED_PROCESSING_FAILED, event_id)
            self._relay.record_processing_failed(EMBEDDED_PROCESSING_FAILED, EMBEDDED, event_id)
            return
        if received.rejection is not None:
            self._keep_dead_letter(body, received.reason, received.event_id)

    def _keep_dead_letter(self, body: bytes, reason: str, event_id: str | None) -> None:
        """Store the dead letter, holding the message (those behind it waiting) until the store
        takes it: the body is nowhere else, so giving up would lose it. An outage is waited out
        as everywhere; any other failure (a constraint, a bug) needs a person, and is an ERROR
        each try, with the outage backoff between tries."""
        for wait in outage_waits():
            try:
                _waiting_out_outages(lambda: self._store.add_dead_letter(body, reason, event_id))
                return
            except Exception as exc:
                log.error(
                    "embedded queue: could not store a dead letter; holding the message, "
                    "trying again in %.1fs: %s",
                    wait,
                    where_it_failed(exc),
                )
                time.sleep(wait)


def _waiting_out_outages(call: Callable[[], T]) -> T:
    """``call``'s result, tried again with backoff while the store is unavailable, as the AMQP
    worker holds its messages: an outage is not a fault of the message."""
    for wait in outage_waits():
        try:
            return call()
        except StoreUnavailable as exc:
            log.warning("embedded queue: store unavailable, waiting %.1fs: %s", wait, exc)
            time.sleep(wait)
