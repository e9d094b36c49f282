"""Runs delivery from the outbox on a pool of threads, apart from intake.

Intake never waits for a recipient. It stores new envelopes under this loop's lease (``lease``)
and hands them over (``take``), so most are delivered without a transaction to claim them; the
rest (behind an earlier envelope of their case, due for a retry, another worker's leftovers)
are claimed from the outbox. Each thread takes a group of up to ``GROUP`` envelopes for one
recipient, delivers them in turn over the recipient's open connection and records them in one
transaction. Each recipient may hold at most ``per_recipient`` of the threads, so one whose
endpoint hangs until its timeout cannot starve the others; a recipient that is down is retried
on its own schedule.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from adapters.base import LONGEST_ATTEMPT_SECONDS
from service.delivery import Clock, Deliverer
from service.store.engine import StoreUnavailable
from service.store.outbox import Claimed, Lease
from service.store.store import Store

log = logging.getLogger(__name__)

GROUP = 16
# The most handed-over envelopes kept in memory waiting for a thread (a few MB of JWS). When
# intake outpaces delivery, as in a bulk sync to a slow recipient, the rest are given back to
# the outbox at once and claimed from there in their turn, rather than piling up in memory
# until their leases run out.
HELD_LIMIT = 2048


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
        held_limit: int = HELD_LIMIT,
    ) -> None:
        self._store = store
        self._deliverer = deliverer
        self._worker = worker
        self._threads = threads
        self._per_recipient = per_recipient
        self._clock = clock
        self._idle_poll = idle_poll_seconds
        self._held_limit = held_limit
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Set once the claims of this worker's previous run have been taken back; until then
        # intake must hold nothing under the worker's lease.
        self.taken_back = threading.Event()
        self._held: list[Claimed] = []
        # Claiming costs a query over the waiting items, so the loop claims only when an item
        # may have become claimable: when woken (an item stored but not handed over, a
        # judgement), when a group finishes with envelopes waiting behind its own or given
        # back (a retry it scheduled among them), after a claim that took all it asked for,
        # and when its wait for a due retry or the idle poll ends (other workers' leftovers).
        # Guarded by ``_lock``.
        self._claim_wanted = True
        # When the earliest waiting item is due, as read after the last claim.
        self._next_due: datetime | None = None

    def wake(self) -> None:
        """Look for due items now, e.g. because some were stored and not handed over."""
        with self._lock:
            self._claim_wanted = True
        self._wake.set()

    def stop(self) -> None:
        """Finish the deliveries in hand and return from ``run``; safe from any thread."""
        self._stopping.set()
        self._wake.set()

    def lease(self) -> Lease | None:
        """The lease intake stores new envelopes under, for this loop to deliver (``take``);
        None until the claims of this worker's previous run have been taken back, and once
        stopping."""
        if not self.taken_back.is_set() or self._stopping.is_set():
            return None
        return Lease(self._worker, self._clock() + self._deliverer.lease)

    def take(self, held: Sequence[Claimed]) -> None:
        """Deliver ``held``, stored under ``lease()``, as threads free up; past ``held_limit``
        waiting, give them back to the outbox to be claimed in their turn."""
        with self._lock:
            room = max(self._held_limit - len(self._held), 0)
            self._held.extend(held[:room])
            overflow = list(held[room:])
        if overflow:
            self._give_back(overflow)
            with self._lock:  # once given back: a claim before that would not find them
                self._claim_wanted = True
        self._wake.set()

    def run(self) -> None:
        """Deliver until ``stop()``. No error ends the loop: it waits and tries again."""
        with ThreadPoolExecutor(self._threads, thread_name_prefix="deliver") as pool:
            while not self._stopping.is_set():
                self._wake.clear()
                # What intake handed over needs no database: it goes before any claim.
                for group in self._handed_over():
                    pool.submit(self._deliver, group)
                wait = self._claim_due(pool)
                if wait and not self._wake.wait(wait):
                    with self._lock:
                        self._claim_wanted = True
        self._give_back_held()

    def _claim_due(self, pool: ThreadPoolExecutor) -> float:
        """Claim for the free threads, if a claim may find anything; seconds to wait then."""
        try:
            if not self.taken_back.is_set():
                self._take_back_claims()
                self.taken_back.set()
            claimed, more, looked = self._claim()
            for group in claimed:
                pool.submit(self._deliver, group)
            if more:
                return 0.0
            if looked:
                # Only what a claim looks at can have changed when the next item is due (a
                # retry scheduled makes its group ask for a claim), so the outbox is not asked
                # after every hand-over.
                self._next_due = self._store.outbox.next_due()
            return self._until_due()
        except StoreUnavailable as exc:
            log.warning("outbox unreachable, trying again shortly: %s", exc)
        except Exception:
            log.exception("delivery loop error; trying again shortly")
        return self._idle_poll

    def _take_back_claims(self) -> None:
        released = self._store.outbox.release(self._worker)
        if released:
            log.info("took back %d deliveries this worker held before it restarted", released)

    def _give_back_held(self) -> None:
        """Stopping: release what intake handed over but no thread took, for any worker."""
        with self._lock:
            held, self._held = self._held, []
        if held:
            self._give_back(held)

    def _give_back(self, items: list[Claimed]) -> None:
        """Give up the leases on ``items``, due again at once to any worker."""
        try:
            self._store.outbox.record([], items)
        except Exception:
            log.exception("held deliveries not given back; their leases will run out")

    def _handed_over(self) -> list[list[Claimed]]:
        """Groups of what intake handed over, for the free threads; the rest wait their turn."""
        with self._lock:
            held, self._held = self._held, []
            return self._grouped(held, kept=self._held)

    def _claim(self) -> tuple[list[list[Claimed]], bool, bool]:
        """Groups claimed for the threads still free, if a claim may find any; whether it took
        all it asked for, so that more may be waiting; and whether it looked.

        The claim's query runs outside the lock, which intake's ``take`` needs: with a backlog
        it can take tens of milliseconds. A wake-up meanwhile asks for the next claim.
        """
        with self._lock:
            free = self._threads - sum(self._in_flight.values())
            if free <= 0 or not self._claim_wanted:
                return [], False, False
            self._claim_wanted = False
            in_flight = {code: n * GROUP for code, n in self._in_flight.items() if n}
        limit = free * GROUP
        try:
            claimed = self._store.outbox.claim(
                worker=self._worker,
                now=self._clock(),
                lease=self._deliverer.lease,
                limit=limit,
                per_recipient=self._per_recipient * GROUP,
                in_flight=in_flight,
            )
        except BaseException:
            with self._lock:
                self._claim_wanted = True
            raise
        more = len(claimed) == limit
        with self._lock:
            self._claim_wanted = self._claim_wanted or more
            return self._grouped(claimed, kept=self._held), more, True

    def _grouped(self, items: Sequence[Claimed], *, kept: list[Claimed]) -> list[list[Claimed]]:
        """``items`` in groups of up to GROUP per recipient, as many as the free threads and
        each recipient's share (``per_recipient`` threads) allow, counted in ``_in_flight``;
        the rest are added to ``kept``."""
        by_recipient: dict[str, list[Claimed]] = {}
        for item in items:
            by_recipient.setdefault(item.envelope.to_authority, []).append(item)
        groups = []
        for recipient, waiting in by_recipient.items():
            for start in range(0, len(waiting), GROUP):
                group = waiting[start : start + GROUP]
                busy = sum(self._in_flight.values())
                if busy < self._threads and self._in_flight[recipient] < self._per_recipient:
                    self._in_flight[recipient] += 1
                    groups.append(group)
                else:
                    kept.extend(group)
        return groups

    def _until_due(self) -> float:
        """Seconds to sleep: until the next item is due, as last read, at most the idle poll."""
        if self._next_due is None:
            return self._idle_poll
        seconds = (self._next_due - self._clock()).total_seconds()
        # Due but not claimable (its recipient is busy, or an earlier item of its case is in
        # flight): a finishing delivery wakes the loop, so there is no need to spin.
        return self._idle_poll if seconds <= 0 else min(seconds, self._idle_poll)

    def _deliver(self, group: list[Claimed]) -> None:
        # A group starts no attempt that might outlast the lease its items are held under.
        lease_left = min(item.lease.until for item in group) - self._clock()
        deadline = time.monotonic() + lease_left.total_seconds() - LONGEST_ATTEMPT_SECONDS
        claimable = False
        try:
            claimable = self._deliverer.deliver_group(
                group, deadline, self._stopping
            ).waiting_behind
        except Exception:
            # Recording the outcomes failed (the database went away as the loop was stopping,
            # or refused even the record of an attempt failed for want of one: ``Deliverer``);
            # the leases run out and the items are delivered again, under the same envelope ids.
            log.exception(
                "delivery outcomes not recorded",
                extra={"event_id": ",".join(item.envelope.event_id for item in group)},
            )
        finally:
            with self._lock:
                self._in_flight[group[0].envelope.to_authority] -= 1
                self._claim_wanted = self._claim_wanted or claimable
            self._wake.set()
