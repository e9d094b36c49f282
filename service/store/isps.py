"""The ISP register as stored: every version of every ISP, none changed once recorded, and
which parties' admins stand behind their signatures on each (``isp_confirmations``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.access import Principal
from service.domain.isp_register import BINDS_NO_ONE, VersionOutOfOrder, confirmable, new_versions
from service.domain.model import IspTerms, isp_terms, signatory_parties
from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction
from service.store.withdrawals import Ending, withdraw


@dataclass(frozen=True)
class IspChange:
    """One version to record, with the audit action that says why and any detail to add."""

    document: dict[str, Any]  # validated, in its published JSON form
    action: str  # isp_created | isp_amended | isp_suspended
    note: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Confirmation:
    """A party's own admin (or a global admin) standing behind its signature on a version."""

    party: str
    confirmed_at: datetime
    # Who confirmed (``Principal.describe()``); None for a signature recorded before
    # confirmations existed, taken as confirmed on upgrading (migration 0005).
    by: dict[str, Any] | None


@dataclass(frozen=True)
class RecordedIsp:
    document: dict[str, Any]
    recorded_at: datetime
    confirmations: tuple[Confirmation, ...]

    @property
    def confirmed(self) -> frozenset[str]:
        """The parties whose signatures their own admins stand behind."""
        return frozenset(c.party for c in self.confirmations)

    @property
    def unconfirmed(self) -> frozenset[str]:
        """The parties signed for whose admins have yet to confirm it; none on a version that
        binds no one anyway (suspended, retired)."""
        if self.document["status"] in BINDS_NO_ONE:
            return frozenset()
        return signatory_parties(self.document) - self.confirmed


def confirmed_on_recording(
    document: dict[str, Any], by: Principal, now: datetime
) -> tuple[Confirmation, ...]:
    """The confirmations ``by`` makes by recording ``document``: its own parties' signatures."""
    return tuple(
        Confirmation(party, now, by.describe())
        for party in sorted(confirmable(document, by.acts_for))
    )


class Isps:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def record(self, changes: Sequence[IspChange], *, now: datetime, by: Principal) -> None:
        """Record new versions and their audit in one transaction: all of them or none.

        The signatures ``by`` may act for are confirmed with them (``confirmable``). The order
        of versions is checked again here, inside the transaction, so two writers racing for
        one version cannot both succeed (the unique constraint is the last word).
        """
        documents = [change.document for change in changes]
        try:
            with self._transaction() as session:
                newest = _newest_rows(session, {document["id"] for document in documents})
                new_versions({row.isp_id: row.document for row in newest}, documents)
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
                session.flush()
                session.add_all(
                    _row(document["id"], document["version"], confirmation)
                    for document in documents
                    for confirmation in confirmed_on_recording(document, by, now)
                )
                for change in changes:
                    self._record_change(session, change, now=now, by=by)
        except IntegrityError as exc:
            raise VersionOutOfOrder(
                "Another change to the register was recorded first; read it again.", {}
            ) from exc

    def _record_change(
        self, session: Session, change: IspChange, *, now: datetime, by: Principal
    ) -> None:
        """Audit one recorded version and, for a suspension or retirement, park again the
        transfers signed under the ISP, each audited ``basis_withdrawn`` after the record that
        counts them (``service.store.withdrawals``)."""
        isp_id, version = change.document["id"], change.document["version"]
        status = change.document["status"]
        ends = status in BINDS_NO_ONE
        parked = withdraw(session, {isp_id: Ending(version, status)}, now) if ends else []
        who = {**change.note, "by": by.describe()}
        detail = {"isp_id": isp_id, "version": version, "status": status, **who}
        if ends:
            detail["parked"] = len(parked)
        self._append_audit(session, None, change.action, detail)
        for withdrawn in parked:
            detail = withdrawn.audit_detail() | who
            self._append_audit(session, withdrawn.event_id, "basis_withdrawn", detail)

    def confirm(
        self, isp_id: str, version: int, parties: Collection[str], *, now: datetime, by: Principal
    ) -> RecordedIsp | None:
        """Confirm the signatures of ``parties`` on one version, audited as ``isp_confirmed``
        with the parties newly confirmed; None if there is no such version. Confirming again
        changes nothing and records nothing.

        The version's row is locked first (SQLite's transactions hold the write lock anyway), so
        two admins confirming at once are taken in turn: one confirms, the other finds it done.
        """
        with self._transaction() as session:
            row = session.scalar(
                sa.select(t.Isp)
                .where(t.Isp.isp_id == isp_id, t.Isp.version == version)
                .with_for_update()
            )
            if row is None:
                return None
            [recorded] = _recorded(session, [row])
            new = [
                Confirmation(party, now, by.describe())
                for party in sorted(set(parties) - recorded.confirmed)
            ]
            if new:
                session.add_all(_row(isp_id, version, confirmation) for confirmation in new)
                detail = {"isp_id": isp_id, "version": version, "parties": [c.party for c in new]}
                self._append_audit(session, None, "isp_confirmed", {**detail, "by": by.describe()})
            confirmations = sorted(recorded.confirmations + tuple(new), key=lambda c: c.party)
            return RecordedIsp(row.document, row.recorded_at, tuple(confirmations))

    def latest(self, isp_ids: Collection[str] | None = None) -> dict[str, RecordedIsp]:
        """The newest version of each ISP (of ``isp_ids`` only, if given), by id."""
        with self._transaction() as session:
            rows = _newest_rows(session, isp_ids)
            return {recorded.document["id"]: recorded for recorded in _recorded(session, rows)}

    def versions(self, isp_id: str) -> list[RecordedIsp]:
        """Every version of one ISP, oldest first; empty if there is no such ISP."""
        with self._transaction() as session:
            rows = session.scalars(
                sa.select(t.Isp).where(t.Isp.isp_id == isp_id).order_by(t.Isp.version)
            ).all()
            return _recorded(session, rows)

    def terms(self) -> list[IspTerms]:
        """The terms decisions rest on: every version of every ISP, for a decision to take
        each ISP's version in force on its day (``domain.basis.versions_in_force``)."""
        with self._transaction() as session:
            return all_terms(session)


def all_terms(session: Session) -> list[IspTerms]:
    """Every version of every ISP's terms, read in the caller's transaction."""
    rows = session.scalars(sa.select(t.Isp).order_by(t.Isp.isp_id, t.Isp.version)).all()
    return [
        isp_terms(recorded.document, confirmed=recorded.confirmed)
        for recorded in _recorded(session, rows, every_version=True)
    ]


def _row(isp_id: str, version: int, confirmation: Confirmation) -> t.IspConfirmation:
    return t.IspConfirmation(
        isp_id=isp_id,
        version=version,
        party=confirmation.party,
        confirmed_at=confirmation.confirmed_at,
        confirmed_by=confirmation.by,
    )


def _recorded(
    session: Session, rows: Sequence[t.Isp], *, every_version: bool = False
) -> list[RecordedIsp]:
    """``rows`` with their confirmations; ``every_version`` when ``rows`` are the whole table,
    which is then read without naming each version."""
    query = sa.select(t.IspConfirmation).order_by(t.IspConfirmation.party)
    if not every_version:
        keys = [(row.isp_id, row.version) for row in rows]
        query = query.where(
            sa.tuple_(t.IspConfirmation.isp_id, t.IspConfirmation.version).in_(keys)
        )
    found: defaultdict[tuple[str, int], list[Confirmation]] = defaultdict(list)
    for c in session.scalars(query):
        found[c.isp_id, c.version].append(Confirmation(c.party, c.confirmed_at, c.confirmed_by))
    return [
        RecordedIsp(row.document, row.recorded_at, tuple(found[row.isp_id, row.version]))
        for row in rows
    ]


def _newest_rows(session: Session, isp_ids: Collection[str] | None) -> list[t.Isp]:
    """The newest version of each ISP (of ``isp_ids`` only, if given), ordered by id."""
    newest = sa.select(t.Isp.isp_id, sa.func.max(t.Isp.version).label("version")).group_by(
        t.Isp.isp_id
    )
    if isp_ids is not None:
        newest = newest.where(t.Isp.isp_id.in_(isp_ids))
    newest = newest.subquery()
    return session.scalars(
        sa.select(t.Isp)
        .join(newest, sa.and_(t.Isp.isp_id == newest.c.isp_id, t.Isp.version == newest.c.version))
        .order_by(t.Isp.isp_id)
    ).all()
