"""Appends audit records to the hash chain, and reads the chain back with its anchors.

Audit records are appended with ``append_audit``, in the session of the change they record, and
written when that session commits, inside its transaction: there is no record without its
change and no change without its record. At commit the pending records are chained: the chain
head row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every store transaction
already holds the write lock from ``BEGIN IMMEDIATE``), the records get the next seqs and
hashes in the order they were appended, are inserted in one statement, the head moves on and
the records are indexed for search. Appends from any number of processes therefore queue on the
head, and the chain never forks.

The records are kept as plain rows until commit rather than as ORM objects in the session: a
unit-of-work flush of several records per event cost more CPU than anything else in storing
it. Taking the head only at commit also holds the most contended lock for the least time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from service.domain.audit_chain import (
    GENESIS,
    MISSING_HEAD,
    Anchor,
    ChainRecord,
    record_hash,
)
from service.domain.audit_time import TimeOrder
from service.domain.judgement_digests import JUDGEMENT_SET_ASIDE, StoredJudgement
from service.domain.model import SET_ASIDE
from service.store import tables as t
from service.store.audit_index import index_problems, index_records
from service.store.engine import READ_ONLY_SNAPSHOT, unavailable_as_store_error
from service.store.rows import insert_if_absent

Transaction = Callable[[], AbstractContextManager[Session]]
# Adds an audit record to the session's transaction: (session, event id, action, detail).
AppendAudit = Callable[[Session, str | None, str, dict[str, Any]], None]
HEAD_ID = 1
# Where a stored event keeps the judgement its transfer was decided on (the event contract's).
EVENT_JUDGEMENT = ("data", "sharing", "judgement")
EMPTY_HEAD = {"id": HEAD_ID, "seq": 0, "hash": GENESIS, "latest_recorded_at": None, "max_lag_us": 0}
MICROSECOND = timedelta(microseconds=1)  # the head keeps the lag in microseconds
_PENDING = "caf_relay.pending_audit"  # the session.info key of the records to chain at commit

# Every store transaction runs these, so they are built once (``service.store.rows``).
_head = t.AuditChainHead.__table__
_SELECT_HEAD_FOR_UPDATE = (
    sa.select(_head.c.seq, _head.c.hash, _head.c.latest_recorded_at, _head.c.max_lag_us)
    .where(_head.c.id == HEAD_ID)
    .with_for_update()
)
_MOVE_HEAD = (
    sa.update(_head)
    .where(_head.c.id == HEAD_ID)
    .values(
        seq=sa.bindparam("new_seq"),
        hash=sa.bindparam("new_hash"),
        latest_recorded_at=sa.bindparam("new_latest"),
        max_lag_us=sa.bindparam("new_lag"),
    )
)
_INSERT_RECORDS = sa.insert(t.AuditRecord.__table__)
# A rejected message's record keeps the id the message claimed, which may be another sender's
# stored transfer (an id conflict, or a publisher reusing an id it has seen). What a refused
# message claims does not say who sent it, so no refusal is part of the timeline, the child's
# export or the authorities' audit of the transfer with that id, not even its own sender's
# earlier refusal; the operator's whole audit has them all.
OF_ITS_TRANSFER = t.AuditRecord.action != "rejected"
# The records of a transfer that are its sender's own business, shown to the sending authority
# (and a global admin, the operator) but not to its recipient: a practitioner's attempt at a
# judgement that was refused (``service.judgements``), which says who tried what and why not,
# and a judgement that came with the event and was set aside, which may name other recipients.
SENDERS_OWN = ("judgement_refused", JUDGEMENT_SET_ASIDE)


def chain_on_commit(sessions: sessionmaker) -> None:
    """Make every session of ``sessions`` chain and write its appended records as it commits."""
    sa.event.listen(sessions, "before_commit", _chain_pending_records)


def append_audit(
    session: Session, event_id: str | None, action: str, detail: dict[str, Any]
) -> None:
    """Append an audit record to ``session``'s transaction, recorded as of now."""
    pending = session.info.setdefault(_PENDING, [])
    pending.append((datetime.now(UTC), event_id, action, detail))


def _chain_pending_records(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    head = _lock_head(session)
    seq, prev = head.seq, head.hash
    rows = []
    for recorded_at, event_id, action, detail in pending:
        seq += 1
        digest = record_hash(seq, recorded_at, event_id, action, detail, prev)
        rows.append(
            {
                "seq": seq,
                "recorded_at": recorded_at,
                "event_id": event_id,
                "action": action,
                "detail": detail,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    session.execute(_INSERT_RECORDS, rows)
    order = time_order(head).after(r[0] for r in pending)
    session.execute(
        _MOVE_HEAD,
        {
            "new_seq": seq,
            "new_hash": prev,
            "new_latest": order.latest,
            "new_lag": order.lag // MICROSECOND,
        },
    )
    index_records(session, [(r["event_id"], r["action"], r["detail"]) for r in rows])


def time_order(head: sa.Row) -> TimeOrder:
    """How far the records' times have run backwards along seq, as the head row keeps it."""
    return TimeOrder(head.latest_recorded_at, head.max_lag_us * MICROSECOND)


def _lock_head(session: Session) -> sa.Row:
    """The head's row, locked until commit; an empty log's head is made on first use.

    The migration makes the head row; it is made here only when the row is missing, as after
    the tables were emptied. Were it deleted under a non-empty log, the next append would reuse
    seq 1 and fail on the unique seq, so appends stop instead of forking the chain.
    """
    row = session.execute(_SELECT_HEAD_FOR_UPDATE).first()
    if row is None:
        insert_if_absent(session, t.AuditChainHead, EMPTY_HEAD)
        row = session.execute(_SELECT_HEAD_FOR_UPDATE).one()
    return row


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    hash: str
    signed_at: datetime
    kid: str
    jws: str


class ChainSnapshot:
    """The records, head and checkpoints as of one moment, for one verification."""

    def __init__(self, session: Session) -> None:
        self._session = session
        head = session.execute(
            sa.select(t.AuditChainHead.seq, t.AuditChainHead.hash).where(
                t.AuditChainHead.id == HEAD_ID
            )
        ).first()
        self.head = MISSING_HEAD if head is None else Anchor(head.seq, head.hash, "the chain head")
        self.checkpoints = [
            StoredCheckpoint(c.seq, c.hash, c.signed_at, c.kid, c.jws)
            for c in session.scalars(sa.select(t.AuditCheckpoint).order_by(t.AuditCheckpoint.seq))
        ]

    def records(self) -> Iterator[ChainRecord]:
        r = t.AuditRecord
        rows = self._session.execute(
            sa.select(r.seq, r.recorded_at, r.event_id, r.action, r.detail, r.prev_hash, r.hash)
            .order_by(r.seq)
            .execution_options(yield_per=2000)
        )
        for row in rows:
            yield ChainRecord(*row)

    def index_problems(self) -> list[str]:
        """How the search index differs from the one these records give (``audit_index``)."""
        return list(index_problems(self._session))

    def judgements(self) -> Iterator[StoredJudgement]:
        """Every transfer's judgements as stored, for the chain's digests to vouch for: the one
        its decision rests on, or one a late delivery overtook (``reinstated_decision``), and
        one that came with its event and was set aside."""
        transfer = t.Transfer
        judgement = transfer.decision["judgement"]
        overtaken = transfer.decision["overtaken_judgement"]
        set_aside = transfer.decision[SET_ASIDE]
        held = [judgement, overtaken, set_aside]
        rows = self._session.execute(
            sa.select(transfer.event_id, *held, transfer.event[EVENT_JUDGEMENT])
            .where(sa.or_(*(kept.as_string().is_not(None) for kept in held)))
            .execution_options(yield_per=2000)
        )
        for event_id, in_decision, overtook, aside, in_event in rows:
            yield StoredJudgement(event_id, in_decision or overtook, in_event, aside)


class AuditLog:
    def __init__(self, transaction: Transaction, engine: sa.Engine) -> None:
        self._transaction = transaction
        self._engine = engine

    @contextmanager
    def snapshot(self) -> Iterator[ChainSnapshot]:
        """One consistent read of the chain while appends go on: REPEATABLE READ on PostgreSQL,
        a deferred transaction under WAL on SQLite, neither holding up a writer. The database
        gone, at the start or during the walk, is ``StoreUnavailable``, as for every other call."""
        with unavailable_as_store_error(), self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            else:
                connection = connection.execution_options(**{READ_ONLY_SNAPSHOT: True})
            with Session(connection) as session, session.begin():
                yield ChainSnapshot(session)

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Keep a signed checkpoint; the first one signed for a seq stays."""
        with self._transaction() as session:
            insert_if_absent(session, t.AuditCheckpoint, vars(checkpoint))
