"""Runs delivery from the outbox on a pool of threads, apart from intake.

Intake never waits for a recipient: it stores, acknowledges and wakes this loop. Each thread
takes a group of up to ``GROUP`` envelopes for one recipient, delivers them in turn over the
recipient's open connection and records them in one transaction. Each recipient may hold at
most ``per_recipient`` of the threads, so one whose endpoint hangs until its timeout cannot
starve the others; a recipient that is down is retried on its own schedule.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from service.config import LONGEST_ATTEMPT_SECONDS
from service.delivery import Clock, Deliverer
from service.store.outbox import Claimed
from service.store.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

GROUP = 16


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
                    # A group starts no attempt that might outlast the lease it was claimed for.
                    deadline = (
                        time.monotonic()
                        + self._deliverer.lease.total_seconds()
                        - LONGEST_ATTEMPT_SECONDS
                    )
                    claimed = self._claim()
                    wait = 0.0 if claimed else self._until_due()
                except StoreUnavailable as exc:
                    log.warning("outbox unreachable, trying again shortly: %s", exc)
                    claimed, wait = [], self._idle_poll
                except Exception:
                    log.exception("delivery loop error; trying again shortly")
                    claimed, wait = [], self._idle_poll
                for group in claimed:
                    pool.submit(self._deliver, group, deadline)
                if wait:
                    self._wake.wait(wait)

    def _take_back_claims(self) -> None:
        released = self._store.outbox.release(self._worker)
        if released:
            log.info("took back %d deliveries this worker held before it restarted", released)

    def _claim(self) -> list[list[Claimed]]:
        """Claim groups for the free threads; ``_in_flight`` counts groups per recipient."""
        with self._lock:
            free = self._threads - sum(self._in_flight.values())
            if free <= 0:
                return []
            claimed = self._store.outbox.claim(
                worker=self._worker,
                now=self._clock(),
                lease=self._deliverer.lease,
                limit=free * GROUP,
                per_recipient=self._per_recipient * GROUP,
                in_flight={code: n * GROUP for code, n in self._in_flight.items() if n},
            )
            by_recipient: dict[str, list[Claimed]] = {}
            for item in claimed:
                by_recipient.setdefault(item.envelope.to_authority, []).append(item)
            groups = [
                items[start : start + GROUP]
                for items in by_recipient.values()
                for start in range(0, len(items), GROUP)
            ]
            for group in groups:
                self._in_flight[group[0].envelope.to_authority] += 1
            return groups

    def _until_due(self) -> float:
        """Seconds to sleep: until the next item is due, at most the idle poll."""
        next_due: datetime | None = self._store.outbox.next_due()
        if next_due is None:
            return self._idle_poll
        seconds = (next_due - self._clock()).total_seconds()
        # Due but not claimable (its recipient is busy, or an earlier item of its case is in
        # flight): a finishing delivery wakes the loop, so there is no need to spin.
        return self._idle_poll if seconds <= 0 else min(seconds, self._idle_poll)

    def _deliver(self, group: list[Claimed], deadline: float) -> None:
        try:
            self._deliverer.deliver_group(group, deadline)
        except Exception:
            # Recording the outcomes failed (e.g. the database went away); the leases run out
            # and the items are delivered again, under the same envelope ids.
            log.exception(
                "delivery outcomes not recorded",
                extra={"event_id": ",".join(item.envelope.event_id for item in group)},
            )
        finally:
            with self._lock:
                self._in_flight[group[0].envelope.to_authority] -= 1
            self._wake.set()
