"""Runs delivery from the outbox on a pool of threads, apart from intake.

Intake never waits for a recipient: it stores, acknowledges and wakes this loop. Each recipient
may hold at most ``per_recipient`` of the threads, so one whose endpoint hangs until its timeout
cannot starve the others; a recipient that is down is retried on its own schedule.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from service.delivery import Clock, Deliverer
from service.store.outbox import Claimed
from service.store.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class DeliveryLoop:
    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        *,
        worker: str,
        threads: int,
        per_recipient: int,
        clock: Clock,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._deliverer = deliverer
        self._worker = worker
        self._threads = threads
        self._per_recipient = per_recipient
        self._clock = clock
        self._idle_poll = idle_poll_seconds
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        """Look for due items now, e.g. because intake has just stored one."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the deliveries in hand and return from ``run``; safe from any thread."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        """Deliver until ``stop()``. No error ends the loop: it waits and tries again."""
        released = False
        with ThreadPoolExecutor(self._threads, thread_name_prefix="deliver") as pool:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    if not released:
                        self._take_back_claims()
                        released = True
                    claimed = self._claim()
                    wait = 0.0 if claimed else self._until_due()
                except StoreUnavailable as exc:
                    log.warning("outbox unreachable, trying again shortly: %s", exc)
                    claimed, wait = [], self._idle_poll
                except Exception:
                    log.exception("delivery loop error; trying again shortly")
                    claimed, wait = [], self._idle_poll
                for item in claimed:
                    pool.submit(self._deliver, item)
                if wait:
                    self._wake.wait(wait)

    def _take_back_claims(self) -> None:
        released = self._store.outbox.release(self._worker)
        if released:
            log.info("took back %d deliveries this worker held before it restarted", released)

    def _claim(self) -> list[Claimed]:
        with self._lock:
            in_flight = dict(self._in_flight)
            free = self._threads - sum(in_flight.values())
            if free <= 0:
                return []
            claimed = self._store.outbox.claim(
                worker=self._worker,
                now=self._clock(),
                lease=self._deliverer.lease,
                limit=free,
                per_recipient=self._per_recipient,
                in_flight=in_flight,
            )
            for item in claimed:
                self._in_flight[item.envelope.to_authority] += 1
            return claimed

    def _until_due(self) -> float:
        """Seconds to sleep: until the next item is due, at most the idle poll."""
        next_due: datetime | None = self._store.outbox.next_due()
        if next_due is None:
            return self._idle_poll
        seconds = (next_due - self._clock()).total_seconds()
        # Due but not claimable (its recipient is busy, or an earlier item of its case is in
        # flight): a finishing delivery wakes the loop, so there is no need to spin.
        return self._idle_poll if seconds <= 0 else min(seconds, self._idle_poll)

    def _deliver(self, item: Claimed) -> None:
        try:
            self._deliverer.deliver(item)
        except Exception:
            # Recording the outcome failed (e.g. the database went away); the lease runs out and
            # the item is delivered again, under the same envelope id.
            log.exception(
                "delivery outcome not recorded", extra={"event_id": item.envelope.event_id}
            )
        finally:
            with self._lock:
                self._in_flight[item.envelope.to_authority] -= 1
            self._wake.set()
