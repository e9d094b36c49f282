"""The ISP register as stored: every version of every ISP, none changed once recorded."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.access import Principal
from service.domain.isp_register import VersionOutOfOrder, new_versions
from service.domain.model import IspTerms, isp_terms
from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction


@dataclass(frozen=True)
class IspChange:
    """One version to record, with the audit action that says why and any detail to add."""

    document: dict[str, Any]  # validated, in its published JSON form
    action: str  # isp_created | isp_amended | isp_suspended
    note: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedIsp:
    document: dict[str, Any]
    recorded_at: datetime


class Isps:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def record(self, changes: Sequence[IspChange], *, now: datetime, by: Principal) -> None:
        """Record new versions and their audit in one transaction: all of them or none.

        The order of versions is checked again here, inside the transaction, so two writers
        racing for one version cannot both succeed (the unique constraint is the last word).
        """
        documents = [change.document for change in changes]
        try:
            with self._transaction() as session:
                newest = _latest(session, {document["id"] for document in documents})
                new_versions({i: r.document for i, r in newest.items()}, documents)
                session.add_all(
                    t.Isp(
                        isp_id=document["id"],
                        version=document["version"],
                        status=document["status"],
                        document=document,
                        recorded_at=now,
                    )
                    for document in documents
                )
                for change in changes:
                    detail = {
                        "isp_id": change.document["id"],
                        "version": change.document["version"],
                        "status": change.document["status"],
                        **change.note,
                        "by": by.describe(),
                    }
                    self._append_audit(session, None, change.action, detail)
        except IntegrityError as exc:
            raise VersionOutOfOrder(
                "Another change to the register was recorded first; read it again.", {}
            ) from exc

    def latest(self, isp_ids: Collection[str] | None = None) -> dict[str, RecordedIsp]:
        """The newest version of each ISP (of ``isp_ids`` only, if given), by id."""
        with self._transaction() as session:
            return _latest(session, isp_ids)

    def versions(self, isp_id: str) -> list[RecordedIsp]:
        """Every version of one ISP, oldest first; empty if there is no such ISP."""
        with self._transaction() as session:
            rows = session.scalars(
                sa.select(t.Isp).where(t.Isp.isp_id == isp_id).order_by(t.Isp.version)
            )
            return [RecordedIsp(row.document, row.recorded_at) for row in rows]

    def terms(self) -> list[IspTerms]:
        """The terms decisions rest on: every version of every ISP, for a decision to take
        each ISP's version in force on its day (``domain.basis.versions_in_force``)."""
        with self._transaction() as session:
            return all_terms(session)


def all_terms(session: Session) -> list[IspTerms]:
    """Every version of every ISP's terms, read in the caller's transaction."""
    rows = session.scalars(sa.select(t.Isp.document).order_by(t.Isp.isp_id, t.Isp.version))
    return [isp_terms(document) for document in rows]


def _latest(session: Session, isp_ids: Collection[str] | None) -> dict[str, RecordedIsp]:
    newest = sa.select(t.Isp.isp_id, sa.func.max(t.Isp.version).label("version")).group_by(
        t.Isp.isp_id
    )
    if isp_ids is not None:
        newest = newest.where(t.Isp.isp_id.in_(isp_ids))
    newest = newest.subquery()
    rows = session.scalars(
        sa.select(t.Isp)
        .join(newest, sa.and_(t.Isp.isp_id == newest.c.isp_id, t.Isp.version == newest.c.version))
        .order_by(t.Isp.isp_id)
    )
    return {row.isp_id: RecordedIsp(row.document, row.recorded_at) for row in rows}
