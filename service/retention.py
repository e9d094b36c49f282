"""Retention runs: purge the payloads of settled transfers whose retention period is over.

Settled is delivered, or withheld on a judgement not to share, whose case data the relay would
otherwise keep for good though it will never send it.

Each purge is one transaction that also appends a ``payload_purged`` audit record, so the audit
shows what was removed, when and under which period, and the chain stays whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from service.domain.audit_chain import timestamp
from service.domain.retention import purge_due, retention_period, settled_by
from service.store.payloads import Payloads


@dataclass(frozen=True)
class Purged:
    event_id: str
    period_days: int
    source: str


class Retention:
    def __init__(
        self, payloads: Payloads, *, judgement_days: int, clock: Callable[[], datetime]
    ) -> None:
        self._payloads = payloads
        self._judgement_days = judgement_days
        self._clock = clock

    def run(self) -> list[Purged]:
        now = self._clock()
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
