"""What tests read straight from the store to see what the relay did: no part of the relay
reads these, so they live with the tests rather than in ``service.store``."""

from __future__ import annotations

import sqlalchemy as sa

from adapters.base import OutboundEnvelope
from service.store import tables as t
from service.store.store import Store


def has_transfer(store: Store, event_id: str) -> bool:
    with store._transaction() as session:
        return session.get(t.Transfer, event_id) is not None


def outbound(store: Store, event_id: str) -> OutboundEnvelope | None:
    """The transfer's envelope to send (not one withdrawn), as an adapter would be given it; None
    if it has none."""
    with store._transaction() as session:
        row = session.execute(
            sa.select(t.Envelope, t.Transfer.to_authority)
            .join(t.Transfer, t.Transfer.event_id == t.Envelope.event_id)
            .where(t.Envelope.event_id == event_id, t.Envelope.withdrawn_at.is_(None))
        ).first()
        if row is None:
            return None
        envelope, to_authority = row
        return OutboundEnvelope(
            envelope_id=envelope.envelope_id,
            event_id=event_id,
            to_authority=to_authority,
            jws=envelope.jws,
            sha256=envelope.sha256,
        )


def broker_publisher(store: Store, broker_user: str) -> str | None:
    """The authority a RabbitMQ user publishes for, if it was registered (intake reads all of
    them at once, ``service.store.reference``)."""
    with store._transaction() as session:
        return session.scalar(
            sa.select(t.BrokerPublisher.authority_code).where(
                t.BrokerPublisher.broker_user == broker_user
            )
        )


def audit_actions(store: Store, event_id: str | None = None) -> list[tuple[str | None, str, dict]]:
    """Every audit record, or one transfer's, oldest first: (event id, action, detail)."""
    with store._transaction() as session:
        query = sa.select(t.AuditRecord).order_by(t.AuditRecord.seq)
        if event_id is not None:
            query = query.where(t.AuditRecord.event_id == event_id)
        return [(r.event_id, r.action, r.detail) for r in session.scalars(query)]


def selects(store: Store, call) -> list[tuple[str, object]]:
    """The SELECT statements ``call`` issues through ``store``, with their parameters."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return seen
