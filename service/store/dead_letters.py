"""The embedded queue's dead letters, as an operator lists them and retention removes them.

A dead letter is refused input kept as it came, with its reason, so that an operator can see
what was refused and have it fixed. Listed, a letter shows when it came, the event id its
refusal is audited under (if one could be read) and its reason, never its body: it may hold a
child's case, so it is kept no longer than its period. The letters go a batch at a time, each
batch in its own transaction with one ``dead_letters_purged`` audit record, so that the audit
says how many went and when they came, never what they held, and no transaction holds SQLite's
write lock, which intake waits on, for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction

BATCH = 1000

_letters = t.DeadLetter.__table__


@dataclass(frozen=True)
class ListedLetter:
    id: int
    received_at: datetime
    event_id: str | None
    reason: str


@dataclass(frozen=True)
class LetterPage:
    letters: list[ListedLetter]
    next_after: int | None  # the id to list after for the next page; None: no more


@dataclass(frozen=True)
class RemovedLetters:
    count: int
    received_from: datetime
    received_until: datetime


class DeadLetters:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def page(self, event_id: str | None, after: int, size: int) -> LetterPage:
        """Up to ``size`` letters with ids past ``after``, oldest first; only those under
        ``event_id`` if given."""
        statement = sa.select(
            _letters.c.id, _letters.c.received_at, _letters.c.event_id, _letters.c.reason
        ).where(_letters.c.id > after)
        if event_id is not None:
            statement = statement.where(_letters.c.event_id == event_id)
        with self._transaction() as session:
            rows = session.execute(statement.order_by(_letters.c.id).limit(size + 1)).all()
        letters = [ListedLetter(*row) for row in rows[:size]]
        return LetterPage(letters, letters[-1].id if len(rows) > size else None)

    def purge_batch(
        self, received_by: datetime, audit_detail: Callable[[RemovedLetters], dict[str, Any]]
    ) -> RemovedLetters | None:
        """Remove up to ``BATCH`` of the letters received by ``received_by``, oldest first, and
        audit them with ``audit_detail`` of what went; None if there were none left.

        The statement returns what it removed, so that the audit counts exactly those, even
        with another run removing letters at the same time.
        """
        due = (
            sa.select(_letters.c.id)
            .where(_letters.c.received_at <= received_by)
            .order_by(_letters.c.id)
            .limit(BATCH)
        )
        with self._transaction() as session:
            received = session.scalars(
                sa.delete(_letters)
                .where(_letters.c.id.in_(due.scalar_subquery()))
                .returning(_letters.c.received_at)
            ).all()
            if not received:
                return None
            removed = RemovedLetters(len(received), min(received), max(received))
            self._append_audit(session, None, "dead_letters_purged", audit_detail(removed))
            return removed
