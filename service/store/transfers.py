"""Transfers as lists to page through, one transfer's view, and a parked transfer settled by a
practitioner.

The list and the view show what a transfer is and where it stands, never case data, so they can
be shown to either of its two authorities. Settling a parked transfer is one transaction that
re-checks it is still parked, so two practitioners deciding at once cannot both decide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from contracts.vocabulary import TransferState
from service.domain.child_keys import without_child_keys
from service.domain.isotime import iso
from service.domain.model import SET_ASIDE, basis_kind
from service.store import tables as t
from service.store.audit_log import OF_ITS_TRANSFER, SENDERS_OWN, AppendAudit, Transaction
from service.store.outbox import stage_delivery
from service.store.payloads import purged_from_the_start
from service.store.withdrawals import NOT_WITHDRAWN, seen_by

if TYPE_CHECKING:
    from service.store.store import AuditEntry, SignedEnvelope

# What a listing reads: never ``event``, which holds the case.
LISTED = (
    "event_id",
    "case_reference",
    "from_authority",
    "to_authority",
    "mode",
    "purpose",
    "state",
    "decision",
    "received_at",
    "updated_at",
)


# The judgements a decision keeps that are its sender's own business: one not to share that
# came after the envelope had arrived (``reinstated_decision``), and one that came with the
# event and was set aside, which may name other recipients.
SENDERS_JUDGEMENTS = ("overtaken_judgement", SET_ASIDE)


def as_its_recipient_sees(view: dict[str, Any]) -> dict[str, Any]:
    """A transfer's ``view`` for its recipient, without the sender's own business: in the
    timeline, and the judgements in its decision whose reasons were never meant for the
    recipient (``SENDERS_JUDGEMENTS``)."""
    timeline = [entry for entry in view["timeline"] if entry["action"] not in SENDERS_OWN]
    decision = {k: v for k, v in view["decision"].items() if k not in SENDERS_JUDGEMENTS}
    return {**view, "decision": decision, "timeline": timeline}


@dataclass(frozen=True)
class TransferQuery:
    """Filters that all apply; ``authority`` matches either end; ``after`` is an event id.

    With ``as_authority``, ``authority`` is the caller's own, and only what it may see is listed:
    what it sent, and what it received once sent (not ``UNSENT``).
    """

    state: str | None = None
    authority: str | None = None
    as_authority: bool = False
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    after: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class TransferPage:
    transfers: list[dict[str, Any]]
    next_after: str | None  # pass as ``after`` for the next page; None on the last page


class UnknownCursor(LookupError):
    """``after`` names no transfer the listing shows: none by that event id, or one the caller
    may no longer see (its recipient's, parked again by an ISP's suspension or expiry). Said
    alike for both, so that it confirms nothing of another authority's transfer."""

    def __init__(self) -> None:
        super().__init__(
            "Names no transfer in this listing: none with that event id, or one no longer "
            "listed to you; start again from the first page."
        )


@dataclass(frozen=True)
class ToJudge:
    """A transfer as a judgement needs it: its parties, its state and the event as received."""

    event_id: str
    from_authority: str
    to_authority: str
    state: str
    event: dict[str, Any]
    decision: dict[str, Any]


@dataclass(frozen=True)
class Settlement:
    """What a judgement made of a parked transfer, to be stored at once."""

    event: dict[str, Any]  # with the judgement attached
    state: str
    decision: dict[str, Any]
    envelope: SignedEnvelope | None
    audit: Sequence[AuditEntry]
    at: datetime


class Transfers:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def page(self, query: TransferQuery) -> TransferPage:
        """One page of transfers, oldest received first (so parked ones queue in order)."""
        transfer = t.Transfer
        statement = sa.select(*(getattr(transfer, column) for column in LISTED))
        if query.state:
            statement = statement.where(transfer.state == query.state)
        visible = sa.true()
        if query.authority:
            visible = (
                seen_by(query.authority)
                if query.as_authority
                else sa.or_(
                    transfer.from_authority == query.authority,
                    transfer.to_authority == query.authority,
                )
            )
            statement = statement.where(visible)
        if query.since:
            statement = statement.where(transfer.received_at >= query.since)
        if query.until:
            statement = statement.where(transfer.received_at < query.until)
        # Only a transfer the listing could show places the cursor: another authority's
        # would otherwise confirm that it exists, and when it was received.
        placed = sa.select(transfer.received_at).where(transfer.event_id == query.after, visible)
        if query.after:
            cursor = placed.scalar_subquery()
            # The first condition is the range the listing index starts from; the second
            # alone would have it read every transfer received before the cursor.
            statement = statement.where(transfer.received_at >= cursor).where(
                sa.or_(
                    transfer.received_at > cursor,
                    sa.and_(transfer.received_at == cursor, transfer.event_id > query.after),
                )
            )
        statement = statement.order_by(transfer.received_at, transfer.event_id)
        with self._transaction() as session:
            rows = session.execute(statement.limit(query.limit + 1)).all()
            # A page after a cursor the listing cannot place is empty: not the listing's end.
            if query.after and not rows and session.scalar(placed) is None:
                raise UnknownCursor()
        listed = [_summary(row) for row in rows[: query.limit]]
        following = listed[-1]["event_id"] if len(rows) > query.limit else None
        return TransferPage(listed, following)

    def counts_by_state(self, viewer: str | None = None) -> dict[str, int]:
        """Transfers by state: all, or those ``viewer`` (an authority) sees."""
        statement = sa.select(t.Transfer.state, sa.func.count()).group_by(t.Transfer.state)
        if viewer:
            statement = statement.where(seen_by(viewer))
        with self._transaction() as session:
            return {state: count for state, count in session.execute(statement)}

    def view(self, event_id: str) -> dict[str, Any] | None:
        """A transfer as its sender sees it: state, basis, categories, deliveries; no case data.
        Its recipient sees ``as_its_recipient_sees`` of it."""
        with self._transaction() as session:
            transfer = session.get(t.Transfer, event_id)
            if transfer is None:
                return None
            # Its envelope to send, not one withdrawn (whose attempts the timeline shows).
            envelope = session.scalar(
                sa.select(t.Envelope).where(t.Envelope.event_id == event_id, NOT_WITHDRAWN)
            )
            attempts = (
                session.scalars(
                    sa.select(t.DeliveryAttempt)
                    .where(t.DeliveryAttempt.envelope_id == envelope.envelope_id)
                    .order_by(t.DeliveryAttempt.id)
                ).all()
                if envelope
                else []
            )
            waiting = session.scalar(
                sa.select(t.OutboxItem).where(t.OutboxItem.event_id == event_id)
            )
            timeline = session.scalars(
                sa.select(t.AuditRecord)
                .where(t.AuditRecord.event_id == event_id, OF_ITS_TRANSFER)
                .order_by(t.AuditRecord.seq)
            ).all()
            return {
                "event_id": transfer.event_id,
                "case_reference": transfer.case_reference,
                "from_authority": transfer.from_authority,
                "to_authority": transfer.to_authority,
                "mode": transfer.mode,
                "purpose": transfer.purpose,
                "state": transfer.state,
                "decision": transfer.decision,
                "received_at": iso(transfer.received_at),
                "updated_at": iso(transfer.updated_at),
                "envelope": None
                if envelope is None
                else {
                    "envelope_id": envelope.envelope_id,
                    "kid": envelope.kid,
                    "sha256": envelope.sha256,
                    "issued_at": iso(envelope.issued_at),
                },
                "deliveries": [
                    {
                        "attempted_at": iso(a.attempted_at),
                        "adapter_type": a.adapter_type,
                        "succeeded": a.succeeded,
                        "retryable": a.retryable,
                        "detail": a.detail,
                        "duration_ms": a.duration_ms,
                        "receipt": a.receipt,
                    }
                    for a in attempts
                ],
                "outbox": None
                if waiting is None
                else {
                    "attempts": waiting.attempts,
                    "next_attempt_at": iso(waiting.next_attempt_at),
                    "enqueued_at": iso(waiting.enqueued_at),
                },
                "timeline": [
                    {
                        "at": iso(r.recorded_at),
                        "action": r.action,
                        "detail": without_child_keys(r.detail),
                    }
                    for r in timeline
                ],
            }

    def to_judge(self, event_id: str) -> ToJudge | None:
        with self._transaction() as session:
            row = session.get(t.Transfer, event_id)
            if row is None:
                return None
            return ToJudge(
                row.event_id,
                row.from_authority,
                row.to_authority,
                row.state,
                row.event,
                row.decision,
            )

    def settle(self, event_id: str, settlement: Settlement) -> bool:
        """Store a judgement's outcome if the transfer is still parked; False if it is not.

        The row is locked first, so of two judgements recorded at once the second sees the
        first's state and changes nothing.
        """
        with self._transaction() as session:
            transfer = session.get(t.Transfer, event_id, with_for_update=True)
            if transfer is None or transfer.state != TransferState.AWAITING_JUDGEMENT:
                return False
            transfer.event = settlement.event
            transfer.state = settlement.state
            transfer.decision = settlement.decision
            transfer.updated_at = settlement.at
            transfer.payload_purged_at = purged_from_the_start(settlement.state, settlement.at)
            if settlement.envelope is not None:
                stage_delivery(session, transfer, settlement.envelope)
            for entry in settlement.audit:
                self._append_audit(session, event_id, entry.action, entry.detail)
            return True


def _summary(row: sa.Row) -> dict[str, Any]:
    listed = row._asdict()
    decision = listed.pop("decision")
    return {
        **listed,
        "basis": basis_kind(decision),
        "reason": decision["reason"],
        "received_at": iso(row.received_at),
        "updated_at": iso(row.updated_at),
    }
