"""Finds audit records, and a child's transfers, through the audit's search index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.domain.audit_chain import timestamp
from service.domain.audit_time import TimeOrder
from service.domain.child_keys import CHILD_RECORD_READ, without_child_keys
from service.store import tables as t
from service.store.audit_log import (
    HEAD_ID,
    OF_ITS_TRANSFER,
    SENDERS_OWN,
    Transaction,
    time_order,
)
from service.store.withdrawals import UNSENT


@dataclass(frozen=True)
class AuditQuery:
    """Filters that all apply; ``authority`` matches either end of a transfer. ``child_key``
    finds the records of the child's transfers or, with ``action`` ``CHILD_RECORD_READ``, the
    reads of its record made by that key. ``event_id`` finds every record made under that id,
    a refusal of an event with it too (``rejected``, seen by the operator only, as below).

    ``viewer`` is the authority whose auditor asks (None: a global admin, the operator): it sees
    the transfers it sent, and those to it only once they were sent, as its listings do, without
    their sender's own business (``SENDERS_OWN``).
    """

    case_reference: str | None = None
    event_id: str | None = None
    child_key: str | None = None
    authority: str | None = None
    basis_kind: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int = 0
    page_size: int = 50
    viewer: str | None = None


@dataclass(frozen=True)
class AuditPage:
    records: list[dict[str, Any]]
    next_after: int | None  # pass as ``after`` for the next page; None on the last page


def _time_order(session: Session) -> TimeOrder | None:
    """How far the records' times run backwards along seq; None before the first record."""
    head = t.AuditChainHead
    found = session.execute(
        sa.select(head.latest_recorded_at, head.max_lag_us).where(head.id == HEAD_ID)
    ).first()
    return None if found is None or found.latest_recorded_at is None else time_order(found)


def _first_record_from(
    session: Session, moment: datetime, order: TimeOrder
) -> sa.ScalarSelect | None:
    """The first record, in seq order, recorded at or after ``moment`` (a subquery for its
    seq), or None if there is none.

    Walking the records in seq order until one is that recent read nearly all of them for a
    recent ``moment`` (about 0.5 s at 1M records on PostgreSQL). As recorded times run
    backwards along seq by the lag at most, the first lies within the lag of the earliest time
    from ``moment`` (``service.domain.audit_time``): two lookups in the ``recorded_at`` index.
    """
    record = t.AuditRecord
    earliest = session.scalar(
        sa.select(sa.func.min(record.recorded_at)).where(record.recorded_at >= moment)
    )
    if earliest is None:
        return None
    return (
        sa.select(sa.func.min(record.seq))
        .where(record.recorded_at >= moment, record.recorded_at <= order.first_span(earliest))
        .scalar_subquery()
    )


def _transfers_of_child(child_key: str) -> sa.Select:
    return sa.select(t.AuditChildKey.event_id).where(t.AuditChildKey.child_key == child_key)


def _about_child(query: AuditQuery) -> sa.ColumnElement[bool]:
    """The records about the child ``query`` names: those of its transfers, or, for a search of
    reads, the reads of its record (each holds the one key it was read by)."""
    record = t.AuditRecord
    if query.action == CHILD_RECORD_READ:
        return record.detail[("child_keys", 0)].as_string() == query.child_key
    return record.event_id.in_(_transfers_of_child(query.child_key))


class AuditSearch:
    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    def search(self, query: AuditQuery) -> AuditPage:
        record, subject = t.AuditRecord, t.AuditSubject
        statement = sa.select(record).where(record.seq > query.after)
        by_subject = query.case_reference or query.authority or query.basis_kind or query.viewer
        if by_subject:
            statement = statement.join(subject, subject.event_id == record.event_id)
        if by_subject or query.child_key:  # the records of transfers, then
            statement = statement.where(OF_ITS_TRANSFER)
        if query.viewer:
            # Correlated, so each candidate is one primary-key lookup: as ``IN (SELECT ...)``
            # PostgreSQL read every transfer for each search.
            sent = (
                sa.exists()
                .where(t.Transfer.event_id == subject.event_id)
                .where(t.Transfer.state.not_in(UNSENT))
            )
            received = sa.and_(
                subject.to_authority == query.viewer, sent, record.action.not_in(SENDERS_OWN)
            )
            statement = statement.where(sa.or_(subject.from_authority == query.viewer, received))
        if query.case_reference:
            statement = statement.where(subject.case_reference == query.case_reference)
        if query.authority:
            statement = statement.where(
                sa.or_(
                    subject.from_authority == query.authority,
                    subject.to_authority == query.authority,
                )
            )
        if query.basis_kind:
            statement = statement.where(subject.basis_kind == query.basis_kind)
        if query.event_id:
            statement = statement.where(record.event_id == query.event_id)
        if query.action:
            statement = statement.where(record.action == query.action)
        if query.child_key:
            statement = statement.where(_about_child(query))
        with self._transaction() as session:
            if query.since or query.until:
                order = _time_order(session)
                if order is None:  # no records yet
                    return AuditPage(records=[], next_after=None)
            if query.since:
                first = _first_record_from(session, query.since, order)
                if first is None:
                    return AuditPage(records=[], next_after=None)
                statement = statement.where(record.recorded_at >= query.since, record.seq >= first)
            if query.until:
                statement = statement.where(record.recorded_at < query.until)
                # From the first record at or after ``until`` and the lag, every record is at
                # or after ``until``: the last page need not read on to the end of the log.
                past = order.past(query.until)
                beyond = None if past is None else _first_record_from(session, past, order)
                if beyond is not None:
                    statement = statement.where(record.seq < beyond)
            rows = session.scalars(statement.order_by(record.seq).limit(query.page_size + 1)).all()
        page = rows[: query.page_size]
        return AuditPage(
            records=[_record(r) for r in page],
            next_after=page[-1].seq if len(rows) > query.page_size else None,
        )

    def child_transfers(self, child_key: str) -> list[dict[str, Any]]:
        """Every transfer whose child has ``child_key``, oldest first, with its audit records.

        Only transfers indexed under that key are read, so nothing of another child is.
        """
        with self._transaction() as session:
            transfers = session.scalars(
                sa.select(t.Transfer)
                .where(t.Transfer.event_id.in_(_transfers_of_child(child_key)))
                .order_by(t.Transfer.received_at, t.Transfer.event_id)
            ).all()
            ids = [transfer.event_id for transfer in transfers]
            records = session.scalars(
                sa.select(t.AuditRecord)
                .where(t.AuditRecord.event_id.in_(ids), OF_ITS_TRANSFER)
                .order_by(t.AuditRecord.seq)
            ).all()
            names = dict(session.execute(sa.select(t.Authority.code, t.Authority.name)).all())
        by_event: dict[str, list[dict[str, Any]]] = {event_id: [] for event_id in ids}
        for r in records:
            by_event[r.event_id].append(_record(r))
        return [
            {
                "event_id": transfer.event_id,
                "case_reference": transfer.case_reference,
                "from": {"code": transfer.from_authority, "name": names[transfer.from_authority]},
                "to": {"code": transfer.to_authority, "name": names[transfer.to_authority]},
                "purpose": transfer.purpose,
                "mode": transfer.mode,
                "state": transfer.state,
                "received_at": timestamp(transfer.received_at),
                "decision": transfer.decision,
                "payload_purged_at": transfer.payload_purged_at
                and timestamp(transfer.payload_purged_at),
                "audit": by_event[transfer.event_id],
            }
            for transfer in transfers
        ]


def _record(record: t.AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "recorded_at": timestamp(record.recorded_at),
        "event_id": record.event_id,
        "action": record.action,
        "detail": without_child_keys(record.detail),
        "hash": record.hash,
    }
