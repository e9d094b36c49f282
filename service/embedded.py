"""The embedded default: an in-process queue in place of RabbitMQ, for one-command runs.

It runs the same relay as the AMQP worker and delivers from the same outbox; rejected input is
kept in the store's dead-letter table with its reason, as ``caf.dead`` keeps it on a broker.
"""

from __future__ import annotations

import logging
import queue
import threading

from service.delivery import Deliverer
from service.relay import Relay
from service.senders import EMBEDDED
from service.store.store import Store

log = logging.getLogger(__name__)

WORKER_NAME = "embedded"
EMBEDDED_PROCESSING_FAILED = "Processing failed; see the service log."


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
                received = self._relay.receive(body, sender=EMBEDDED)
                if received.rejection is not None:
                    self._store.add_dead_letter(body, received.reason)
            except Exception:
                log.exception("embedded queue: processing failed; message kept as dead letter")
                self._store.add_dead_letter(body, EMBEDDED_PROCESSING_FAILED)
                self._relay.record_processing_failed(EMBEDDED_PROCESSING_FAILED)
            finally:
                self._queue.task_done()
