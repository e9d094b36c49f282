"""The stored payloads of settled transfers, as retention sees them: what is held, and purging.

A payload is the case data in the stored event and the signed envelope (the JWS carries the
minimised case). Purging removes both and keeps everything else: the transfer's parties, basis
decision and state, the envelope's id and digest, the delivery attempts and the audit. Settled
means delivered, or withheld on a judgement not to share: nothing will be sent from either. A
transfer withheld since migration 0006 holds no case from its judgement on, so it is stored as
purged then (``purged_from_the_start``); one stored whole before, by an earlier release, is
purged when its period ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from contracts.vocabulary import TransferState
from service.domain.retention import without_case
from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction
from service.store.withdrawals import NOT_WITHDRAWN

# The states nothing more is sent from, so that a payload is only kept for its retention period.
SETTLED = (TransferState.DELIVERED, TransferState.WITHHELD)


def purged_from_the_start(state: str, at: datetime) -> datetime | None:
    """When a transfer stored in ``state`` at ``at`` holds no payload from: a withheld one keeps
    no case (``service.domain.minimise``); None for any other, which does."""
    return at if state == TransferState.WITHHELD else None


@dataclass(frozen=True)
class HeldPayload:
    event_id: str
    state: str  # one of SETTLED
    settled_at: datetime  # when it was delivered or withheld
    decision: dict[str, Any]


class Payloads:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def held_for_settled(self, settled_by: datetime) -> list[HeldPayload]:
        """Transfers settled by ``settled_by`` whose payload is still held, the longest settled
        first: only those, as every one held is most of a retention period's transfers."""
        with self._transaction() as session:
            transfer = t.Transfer
            rows = session.execute(
                sa.select(transfer.event_id, transfer.state, transfer.updated_at, transfer.decision)
                .where(transfer.state.in_(SETTLED))
                .where(transfer.payload_purged_at.is_(None))
                .where(transfer.updated_at <= settled_by)
                .order_by(transfer.updated_at)
            ).all()
            return [HeldPayload(*row) for row in rows]

    def isp_retention_days(self) -> dict[tuple[str, int], int]:
        """Each recorded ISP version's retention period, in days."""
        with self._transaction() as session:
            documents = session.scalars(sa.select(t.Isp.document))
            return {
                (doc["id"], doc["version"]): doc["retention"]["period_days"] for doc in documents
            }

    def purge(self, event_id: str, at: datetime, audit_detail: dict[str, Any]) -> bool:
        """Remove one settled transfer's payload and audit it; False if there is none to purge."""
        with self._transaction() as session:
            transfer = session.get(t.Transfer, event_id, with_for_update=True)
            if transfer is None or transfer.state not in SETTLED or transfer.payload_purged_at:
                return False
            transfer.event, transfer.payload_purged_at = without_case(transfer.event), at
            session.execute(
                sa.update(t.Envelope)
                .where(t.Envelope.event_id == event_id, NOT_WITHDRAWN)
                .values(jws=None)
            )
            self._append_audit(session, event_id, "payload_purged", audit_detail)
            return True
