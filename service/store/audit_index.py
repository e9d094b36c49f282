"""The audit's search index: which transfer each record is about, filled from the records.

The index is derived from what the chain records (a transfer's ``received`` and
``basis_decided`` details), so it never says more than the chained records do; it only makes
them findable by case reference, authority, basis kind and child key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.domain.model import basis_kind
from service.store import tables as t


def index_records(
    connection: Connection | Session, records: Iterable[tuple[str | None, str, dict[str, Any]]]
) -> None:
    """Index (event_id, action, detail) records in the transaction that appends them."""
    for event_id, action, detail in records:
        if event_id is None:
            continue
        if action == "received":
            connection.execute(
                sa.insert(t.AuditSubject).values(
                    event_id=event_id,
                    case_reference=detail["case_reference"],
                    from_authority=detail["from_authority"],
                    to_authority=detail["to_authority"],
                )
            )
            keys = sorted(set(detail.get("child_keys", [])))
            if keys:
                connection.execute(
                    sa.insert(t.AuditChildKey),
                    [{"child_key": key, "event_id": event_id} for key in keys],
                )
        elif action == "basis_decided":
            connection.execute(
                sa.update(t.AuditSubject)
                .where(t.AuditSubject.event_id == event_id)
                .values(basis_kind=basis_kind(detail))
            )
