"""Retention runs: purge the payloads of settled transfers whose retention period is over, and
the embedded queue's dead letters kept past theirs.

Settled is delivered, or withheld on a judgement not to share, whose case data the relay would
otherwise keep for good though it will never send it. A dead letter is refused input, kept as
it came (it may hold a child's case) for an operator to see what was refused, for
``CAF_RELAY_DEAD_LETTER_RETENTION_DAYS`` from its arrival.

Each purge is one transaction that also appends a ``payload_purged`` (or, for a batch of dead
letters, ``dead_letters_purged``) audit record, so the audit shows what was removed, when and
under which period, and the chain stays whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.domain.audit_chain import timestamp
from service.domain.retention import purge_due, retention_period, settled_by
from service.store.dead_letters import DeadLetters, RemovedLetters
from service.store.payloads import Payloads

DEAD_LETTER_PERIOD = "CAF_RELAY_DEAD_LETTER_RETENTION_DAYS"


@dataclass(frozen=True)
class Purged:
    event_id: str
    period_days: int
    source: str


@dataclass(frozen=True)
class RetentionRun:
    payloads: list[Purged]
    dead_letters: int  # how many were removed


class Retention:
    def __init__(
        self,
        payloads: Payloads,
        dead_letters: DeadLetters,
        *,
        judgement_days: int,
        dead_letter_days: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._payloads = payloads
        self._dead_letters = dead_letters
        self._judgement_days = judgement_days
        self._dead_letter_days = dead_letter_days
        self._clock = clock

    def run(self) -> RetentionRun:
        now = self._clock()
        return RetentionRun(self._purge_payloads(now), self._purge_dead_letters(now))

    def _purge_payloads(self, now: datetime) -> list[Purged]:
        isp_days = self._payloads.isp_retention_days()
        oldest_due = settled_by(now, min([*isp_days.values(), self._judgement_days]))
        if oldest_due is None:
            return []
        purged = []
        for held in self._payloads.held_for_settled(oldest_due):
            period = retention_period(held.decision, isp_days, self._judgement_days)
            if period is None or not purge_due(held.settled_at, period, now):
                continue
            detail = {
                f"{held.state}_at": timestamp(held.settled_at),
                "retention_days": period.days,
                "period_set_by": period.source,
                "removed": ["case data", "signed envelope"],
            }
            if self._payloads.purge(held.event_id, now, detail):
                purged.append(Purged(held.event_id, period.days, period.source))
        return purged

    def _purge_dead_letters(self, now: datetime) -> int:
        received_by = settled_by(now, self._dead_letter_days)
        if received_by is None:
            return 0
        removed = 0
        while batch := self._dead_letters.purge_batch(received_by, self._dead_letters_detail):
            removed += batch.count
        return removed

    def _dead_letters_detail(self, removed: RemovedLetters) -> dict[str, Any]:
        """What a batch's audit record says: how many went, when they came and under which
        period; never what they held or why they were refused (their ``rejected`` records
        keep that)."""
        return {
            "dead_letters": removed.count,
            "received_from": timestamp(removed.received_from),
            "received_until": timestamp(removed.received_until),
            "retention_days": self._dead_letter_days,
            "period_set_by": DEAD_LETTER_PERIOD,
            "removed": ["refused input as received", "reason"],
        }
