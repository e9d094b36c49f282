"""The stored payloads of delivered transfers, as retention sees them: what is held, and purging.

A payload is the case data in the stored event and the signed envelope, both no more than was
sent (the minimised case). Purging removes both and keeps everything else: the transfer's
parties, basis decision and state, the envelope's id and digest, the delivery attempts and the
audit. Only a delivered transfer holds a payload it will not send again: a withheld one keeps
no case from its judgement on (``service.domain.minimise``), and a parked or failed one keeps
its payload for the judgement or the redelivery it waits for.
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


@dataclass(frozen=True)
class HeldPayload:
    event_id: str
    delivered_at: datetime
    decision: dict[str, Any]


class Payloads:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def held_for_delivered(self) -> list[HeldPayload]:
        """Delivered transfers whose payload is still held, the longest delivered first."""
        with self._transaction() as session:
            transfer = t.Transfer
            rows = session.execute(
                sa.select(transfer.event_id, transfer.updated_at, transfer.decision)
                .where(transfer.state == TransferState.DELIVERED)
                .where(t.Transfer.payload_purged_at.is_(None))
                .order_by(t.Transfer.updated_at)
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
        """Remove one delivered transfer's payload and audit it; False if there is none to purge."""
        with self._transaction() as session:
            transfer = session.get(t.Transfer, event_id, with_for_update=True)
            delivered = transfer is not None and transfer.state == TransferState.DELIVERED
            if not delivered or transfer.payload_purged_at:
                return False
            transfer.event, transfer.payload_purged_at = without_case(transfer.event), at
            session.execute(
                sa.update(t.Envelope).where(t.Envelope.event_id == event_id).values(jws=None)
            )
            self._append_audit(session, event_id, "payload_purged", audit_detail)
            return True
