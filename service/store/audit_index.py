"""The audit's search index: which transfer each record is about, filled from the records.

The index is derived from what the chain records (a transfer's ``received`` and
``basis_decided`` details, its ``basis_withdrawn`` and ``basis_reinstated`` records), so it
never says more than the chained records do; it only makes them findable by case reference,
authority, basis kind and child key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

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
        if action == "received":
            subjects[event_id] = {
                "event_id": event_id,
                "case_reference": detail["case_reference"],
                "from_authority": detail["from_authority"],
                "to_authority": detail["to_authority"],
                "basis_kind": None,
            }
            keys = sorted(set(detail.get("child_keys", [])))
            child_keys += [{"child_key": key, "event_id": event_id} for key in keys]
        elif action in REBASED:
            kind = basis_kind(detail) if action == "basis_decided" else REBASED[action]
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
