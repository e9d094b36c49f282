"""The audit's search index: which transfer each record is about, filled from the records.

The index is derived from what the chain records (a transfer's ``received`` and
``basis_decided`` details, its ``basis_withdrawn`` and ``basis_reinstated`` records), so it
never says more than the chained records do; it only makes them findable by case reference,
authority, basis kind and child key.

The index's rows are not in the chain, so whoever can write the tables could change one and
hide a transfer's records from an authority's auditor, or a child's export, without breaking
a hash. ``index_problems`` therefore derives the index again from the records, as
verification walks them, and names each received record whose transfer the stored index no
longer matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from service.domain.model import basis_kind
from service.store import tables as t

# Every transaction that appends records runs these, so they are built once
# (``service.store.rows``).
_subject = t.AuditSubject.__table__
_INSERT_SUBJECTS = sa.insert(_subject)
_INSERT_CHILD_KEYS = sa.insert(t.AuditChildKey.__table__)
_SET_BASIS_KIND = (
    sa.update(_subject)
    .where(_subject.c.event_id == sa.bindparam("subject"))
    .values(basis_kind=sa.bindparam("kind"))
)

# The records that change a transfer's basis: its decision (a judgement's too), an ISP's
# suspension withdrawing it (no basis then) and a late delivery reinstating it (the ISP again).
REBASED = {"basis_decided": None, "basis_withdrawn": "none", "basis_reinstated": "isp"}
RECEIVED = "received"
# The index's columns of a transfer that its ``received`` record gives.
ARRIVAL_COLUMNS = ("case_reference", "from_authority", "to_authority")


def _arrival(detail: dict[str, Any]) -> dict[str, str]:
    """The columns of a transfer's index entry its ``received`` record's ``detail`` gives."""
    return {column: detail[column] for column in ARRIVAL_COLUMNS}


def _child_keys(detail: dict[str, Any]) -> list[str]:
    """The keys a transfer is found by as a child's, from its ``received`` record's detail."""
    return sorted(set(detail.get("child_keys", [])))


def _rebased_kind(action: str, detail: dict[str, Any]) -> str:
    """The basis kind a record that changes a transfer's basis (``REBASED``) leaves it with."""
    return basis_kind(detail) if action == "basis_decided" else REBASED[action]


def index_records(
    connection: Connection | Session, records: Iterable[tuple[str | None, str, dict[str, Any]]]
) -> None:
    """Index (event_id, action, detail) records in the transaction that appends them.

    One statement per table for the lot, not per record: intake appends a batch's records in
    one transaction. A ``basis_decided`` record whose ``received`` record is in the same lot
    sets the basis kind on the subject as it is inserted; a later one (a practitioner's
    judgement) updates the stored subject.
    """
    subjects: dict[str, dict[str, Any]] = {}
    child_keys: list[dict[str, str]] = []
    basis_kinds: list[dict[str, str]] = []
    for event_id, action, detail in records:
        if event_id is None:
            continue
        if action == RECEIVED:
            subjects[event_id] = {"event_id": event_id, **_arrival(detail), "basis_kind": None}
            child_keys += [{"child_key": key, "event_id": event_id} for key in _child_keys(detail)]
        elif action in REBASED:
            kind = _rebased_kind(action, detail)
            if event_id in subjects:
                subjects[event_id]["basis_kind"] = kind
            else:
                basis_kinds.append({"subject": event_id, "kind": kind})
    if subjects:
        connection.execute(_INSERT_SUBJECTS, list(subjects.values()))
    if child_keys:
        connection.execute(_INSERT_CHILD_KEYS, child_keys)
    if basis_kinds:
        connection.execute(_SET_BASIS_KIND, basis_kinds)


def index_problems(session: Session) -> Iterator[str]:
    """How the stored index differs from the one the records give, in the order of the
    transfers' ``received`` records; then how many entries no record gives.

    One pass over the received records, each with its transfer's index entry, child keys and
    latest record that changed its basis, joined in the database: memory stays the same however
    many transfers there are. Problems name records by seq, never transfers by event id, as the
    chain's do (the report is every auditor's).
    """
    rows = session.execute(_each_transfer().execution_options(yield_per=2000))
    for row in rows:
        differs = _differences(row)
        if differs:
            yield (
                f"The search index's entry for the transfer whose arrival is audit record "
                f"{row.seq} {differs}, so searches may find its records where they should not, "
                "or miss them."
            )
    strays = session.scalar(_stray_entries())
    if strays:
        yield (
            f"The search index holds {strays} entries that no audit record gives: searches may "
            "find records under them that they should not."
        )


def _differences(row: sa.Row) -> str:
    """What is wrong with a transfer's stored index entry (``_each_transfer``), or ''."""
    if row.indexed is None:
        return "is missing"
    received = {
        **{column: getattr(row, f"received_{column}") for column in ARRIVAL_COLUMNS},
        "child_keys": row.received_child_keys or [],
    }
    kind = None
    if row.rebased is not None:  # a decision holds ``isp`` or ``judgement`` only if it rests on it
        basis = {"isp": row.rebased_isp, "judgement": row.rebased_judgement}
        kind = _rebased_kind(row.rebased, {k: v for k, v in basis.items() if v is not None})
    expected = {**_arrival(received), "basis_kind": kind, "child_keys": _child_keys(received)}
    stored = {column: getattr(row, column) for column in (*ARRIVAL_COLUMNS, "basis_kind")}
    stored["child_keys"] = sorted((row.child_keys or "").split())
    wrong = [column for column, value in expected.items() if stored[column] != value]
    return f"differs in {', '.join(wrong)}" if wrong else ""


def _each_transfer() -> sa.Select:
    """Every ``received`` record in seq order, with its transfer's stored index entry (its
    child keys as one space-separated string) and the latest record that changed its basis:
    of the records' details, only what the index is made from (a decision's is long)."""
    record, subject, key = t.AuditRecord, t.AuditSubject, t.AuditChildKey
    latest = (
        sa.select(record.event_id, sa.func.max(record.seq).label("seq"))
        .where(record.action.in_(REBASED))
        .group_by(record.event_id)
        .subquery()
    )
    rebased = aliased(t.AuditRecord)
    keys = (
        sa.select(key.event_id, sa.func.aggregate_strings(key.child_key, " ").label("child_keys"))
        .group_by(key.event_id)
        .subquery()
    )
    return (
        sa.select(
            record.seq,
            *(record.detail[c].as_string().label(f"received_{c}") for c in ARRIVAL_COLUMNS),
            record.detail["child_keys"].label("received_child_keys"),
            subject.event_id.label("indexed"),
            *(getattr(subject, column) for column in ARRIVAL_COLUMNS),
            subject.basis_kind,
            rebased.action.label("rebased"),
            rebased.detail["isp"].as_string().label("rebased_isp"),
            rebased.detail["judgement"].as_string().label("rebased_judgement"),
            keys.c.child_keys,
        )
        .select_from(record)
        .outerjoin(subject, subject.event_id == record.event_id)
        .outerjoin(latest, latest.c.event_id == record.event_id)
        .outerjoin(rebased, rebased.seq == latest.c.seq)
        .outerjoin(keys, keys.c.event_id == record.event_id)
        .where(record.action == RECEIVED, record.event_id.is_not(None))
        .order_by(record.seq)
    )


def _stray_entries() -> sa.ScalarSelect:
    """How many index rows (transfers and child keys) name an event no received record has."""
    record = t.AuditRecord

    def without_record(table: type) -> sa.Select:
        arrived = sa.exists().where(record.event_id == table.event_id, record.action == RECEIVED)
        return sa.select(sa.func.count()).select_from(table).where(~arrived).scalar_subquery()

    return sa.select(without_record(t.AuditSubject) + without_record(t.AuditChildKey))
