"""The one object the service layer stores and reads through; each method is one transaction
(``record_intake`` may retry in another, see there).

Writes that must not be separated (a transfer, its signed envelope and their audit records) are
committed together, before the inbound message is acknowledged, so a crash loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import (
    IntegrityError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import OutboundEnvelope
from contracts.reference import LONDON_AUTHORITIES
from service.access import OPERATOR
from service.secrets import SecretBox
from service.store import tables as t
from service.store.access import Access
from service.store.audit_log import (
    AuditLog,
    append_audit,
    chain_on_commit,
)
from service.store.audit_search import AuditSearch
from service.store.dead_letters import DeadLetters
from service.store.engine import (
    READ_ONLY_SNAPSHOT,
    Migration,
    StoreUnavailable,
    bring_to_newest_schema,
    busy_within,
    downgrade_plan,
    make_engine,
    require_migrated,
    take_schema_back_to,
    unavailable_as_store_error,
)
from service.store.isps import IspChange, Isps
from service.store.operations import OperationsCounts
from service.store.organisations import Organisations
from service.store.outbox import (
    Claimed,
    Lease,
    Outbox,
    envelope_values,
    insert_items,
    item_values,
)
from service.store.payloads import Payloads, purged_from_the_start
from service.store.reference import IntakeReference, ReferenceCache
from service.store.transfers import Transfers
from service.store.write_turns import WriteTurns

DUPLICATE = "duplicate"
DUPLICATE_REASON = "Event id already received."
# Another authority's event with an id already stored is refused, not taken for a duplicate:
# that would acknowledge it and deliver nothing.
ID_CONFLICT = "id_conflict"
ID_CONFLICT_REASON = (
    "Event id already used by another authority's event; an id must be unique across all"
    " publishers (a UUID is)."
)


@dataclass(frozen=True)
class AuditEntry:
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class SignedEnvelope:
    envelope_id: str
    kid: str
    jws: str
    sha256: str
    issued_at: datetime


@dataclass(frozen=True)
class NewTransfer:
    """Everything decided about one inbound event, to be stored at once. ``sent_by`` is who
    handed it in (``Sender.sent_by``), for the record of a duplicate or an id conflict."""

    event: dict[str, Any]
    state: str
    decision: dict[str, Any]
    received_at: datetime
    envelope: SignedEnvelope | None
    audit: Sequence[AuditEntry]
    sent_by: Mapping[str, Any]


@dataclass(frozen=True)
class RejectedInput:
    """An inbound message refused as bad input: only its audit record is stored, naming who
    handed it in (``Sender.sent_by``)."""

    event_id: str | None
    rejection: str
    reason: str
    sent_by: Mapping[str, Any]


@dataclass(frozen=True)
class StoredIntake:
    """What storing an intake batch did: which items repeated a stored event id, in the batch's
    order (``DUPLICATE``, ``ID_CONFLICT`` or None), and the new outbox items put under the
    caller's lease for it to deliver."""

    repeats: list[str | None]
    held: list[Claimed]


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    def __init__(self, url: str, secret_box: SecretBox) -> None:
        self.url = url
        self._engine = make_engine(url)
        self._write_turns = WriteTurns(url) if url.startswith("sqlite") else None
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        chain_on_commit(self._sessions)
        self._box = secret_box
        self.outbox = Outbox(self._transaction, append_audit)
        self.audit = AuditLog(self._transaction, self._engine)
        self.audit_search = AuditSearch(self._transaction)
        self.payloads = Payloads(self._transaction, append_audit)
        self.dead_letters = DeadLetters(self._transaction, append_audit)
        self.access = Access(self._transaction, append_audit)
        self.isps = Isps(self._transaction, append_audit)
        self.operations = OperationsCounts(self._transaction)
        self.organisations = Organisations(self._transaction, append_audit, secret_box)
        self.transfers = Transfers(self._transaction, append_audit)
        self.reference = ReferenceCache(self._transaction)

    @property
    def location(self) -> str:
        """Where the database is, for a person: its URL with the password masked, and of its
        query only the host (a Unix socket's folder): a password may be given there too."""
        url = self._engine.url
        host = {k: v for k, v in url.query.items() if k == "host"}
        return url.set(query=host).render_as_string(hide_password=True)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        turn = self._write_turns or nullcontext()
        with unavailable_as_store_error(), turn, self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self._engine.dispose()
        if self._write_turns is not None:
            self._write_turns.close()

    def drop_connections(self) -> None:
        """Close the pooled connections, to be opened again when next needed: before a fork,
        so that no connection is shared with the child."""
        self._engine.dispose()

    # -- schema and reference data ------------------------------------------------------------

    def initialise(self) -> list[Migration]:
        """Migrate to the newest schema and seed the London authorities; safe to repeat.
        Returns the migrations this call applied.

        Every process calls this at start-up (web workers, relay workers), so they queue (an
        advisory lock on PostgreSQL, the write lock on SQLite) and only the first does any work.
        """
        with unavailable_as_store_error(), self._engine.begin() as connection:
            applied = bring_to_newest_schema(connection)
            known = set(connection.scalars(sa.select(t.Authority.code)))
            missing = [
                {"code": code, "name": name, "kind": "local_authority"}
                for code, name in LONDON_AUTHORITIES.items()
                if code not in known
            ]
            if missing:
                connection.execute(sa.insert(t.Authority), missing)
        return applied

    def downgrade_plan(self, revision: str) -> list[Migration]:
        """The migrations ``downgrade(revision)`` would undo, newest first; it only reads."""
        with unavailable_as_store_error(), self._engine.connect() as connection:
            return downgrade_plan(
                connection.execution_options(**{READ_ONLY_SNAPSHOT: True}), revision
            )

    def downgrade(self, revision: str) -> list[Migration]:
        """Take the schema back to ``revision``, for an earlier release to run on, in one
        transaction under the lock an upgrade takes. Returns the migrations undone."""
        with unavailable_as_store_error(), self._engine.begin() as connection:
            return take_schema_back_to(connection, revision)

    def require_migrated(self) -> None:
        """Raise ``SchemaBehind`` (or ``SchemaTooNew``) unless the schema is this release's: for
        what works on the database without migrating it (the command line), rather than failing
        on a table or a column that is not there yet, or writing to one it does not know. It
        only reads, so it takes no SQLite write lock."""
        with unavailable_as_store_error(), self._engine.connect() as connection:
            require_migrated(connection.execution_options(**{READ_ONLY_SNAPSHOT: True}))

    def ping(self, within: float) -> None:
        """Raise unless the database answers, and on SQLite lets this process write (its ``BEGIN
        IMMEDIATE``) within ``within`` seconds: another connection's long write would otherwise
        hold the caller for the whole busy timeout. The driver's error says why, but for that
        wait, which ``StoreUnavailable`` names."""
        with self._engine.connect() as connection, busy_within(connection, within):
            try:
                connection.execute(sa.text("SELECT 1"))
            except OperationalError as exc:
                if "locked" not in str(exc.orig):
                    raise
                raise StoreUnavailable(
                    f"Another connection has held the database's write lock for longer "
                    f"than {within:g} s ({exc.orig})."
                ) from exc

    def authorities(self) -> dict[str, str]:
        with self._transaction() as session:
            return _authorities(session)

    def intake_reference(self) -> IntakeReference:
        """The authorities, ISPs and broker publishers to decide a batch on, kept in memory until
        a batch stored with ``reference=`` finds them changed (``service.store.reference``)."""
        return self.reference.current()

    # -- ISPs ---------------------------------------------------------------------------------

    def add_isp(self, document: dict[str, Any]) -> None:
        """Create an ISP (validated, in its JSON form) as the operator: how tests and demos seed.

        Admins go through ``service.isps``, which checks who may write; see ``self.isps``.
        """
        self.isps.record([IspChange(document, "isp_created")], now=_now(), by=OPERATOR)

    # -- adapters -----------------------------------------------------------------------------

    def adapter_updated_at(self, authority: str) -> datetime | None:
        """When ``authority``'s adapter was last set (None: it has none), as committed now; for
        a delivery group to check, as it starts, that the adapter it has is still the one set.
        One statement, outside any transaction on PostgreSQL, and a snapshot on SQLite, which
        queues for no write turn: it costs a delivery group a round trip, not a transaction."""
        with unavailable_as_store_error(), self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                connection = connection.execution_options(**{READ_ONLY_SNAPSHOT: True})
            return connection.scalar(_ADAPTER_UPDATED_AT, {"authority": authority})

    def authority_keys(self, authority: str) -> dict[str, Any] | None:
        with self._transaction() as session:
            return session.scalar(sa.select(t.Authority.jwks).where(t.Authority.code == authority))

    # -- transfers ----------------------------------------------------------------------------

    def record_intake(
        self,
        items: Sequence[NewTransfer | RejectedInput],
        *,
        lease: Lease | None = None,
        reference: IntakeReference | None = None,
    ) -> StoredIntake:
        """Store a batch of inbound outcomes in one transaction.

        With the ``reference`` they were decided on, nothing is stored if it is no longer
        current: ``ReferenceChanged`` is raised, for the caller to decide them again.

        A transfer whose event id is already stored, or comes earlier in the batch, is not
        stored again. From the same authority it is a duplicate, audited as such; from another
        it is an id conflict, audited as rejected. If another process stores one of the
        ids meanwhile, the batch is stored again in a new transaction that sees it. With a
        ``lease``, the new envelopes that a claim could take at once are held under it, for the
        caller to deliver without claiming them (``outbox.insert_items``).
        """
        try:
            return self._record_intake(items, lease, reference)
        except IntegrityError:
            return self._record_intake(items, lease, reference)

    def _record_intake(
        self,
        items: Sequence[NewTransfer | RejectedInput],
        lease: Lease | None,
        reference: IntakeReference | None,
    ) -> StoredIntake:
        ids = [item.event["id"] for item in items if isinstance(item, NewTransfer)]
        repeats: list[str | None] = []
        with self._transaction() as session:
            if reference is not None:
                self.reference.check(session, reference)
            rows = session.execute(_STORED_SENDERS, {"ids": ids}) if ids else ()
            senders = {row.event_id: row.from_authority for row in rows}
            fresh, audit = [], []
            for item in items:
                sent_by = {"sent_by": dict(item.sent_by)}
                if isinstance(item, RejectedInput):
                    detail = {"rejection": item.rejection, "reason": item.reason, **sent_by}
                    audit.append((item.event_id, "rejected", detail))
                    repeats.append(None)
                    continue
                event_id, sender = item.event["id"], item.event["data"]["from_authority"]
                if event_id not in senders:
                    senders[event_id] = sender
                    repeats.append(None)
                    fresh.append(item)
                elif senders[event_id] == sender:
                    repeats.append(DUPLICATE)
                    audit.append((event_id, DUPLICATE, {"reason": DUPLICATE_REASON, **sent_by}))
                else:
                    repeats.append(ID_CONFLICT)
                    detail = {"rejection": ID_CONFLICT, "reason": ID_CONFLICT_REASON, **sent_by}
                    audit.append((event_id, "rejected", detail))
            stored, held = _insert_transfers(session, fresh, lease)
            for event_id, action, detail in stored + audit:
                append_audit(session, event_id, action, detail)
        return StoredIntake(repeats, held)

    def record_audit(self, event_id: str | None, action: str, detail: dict[str, Any]) -> None:
        with self._transaction() as session:
            append_audit(session, event_id, action, detail)

    def add_dead_letter(self, body: bytes, reason: str, event_id: str | None = None) -> None:
        """Keep refused input with its reason and, if one could be read, its event id."""
        with self._transaction() as session:
            letter = t.DeadLetter(received_at=_now(), reason=reason, event_id=event_id, body=body)
            session.add(letter)


_transfer = t.Transfer.__table__
# Intake runs these in every transaction, so they are built once (``service.store.rows``).
_STORED_SENDERS = sa.select(_transfer.c.event_id, _transfer.c.from_authority).where(
    _transfer.c.event_id.in_(sa.bindparam("ids", expanding=True))
)
_INSERT_TRANSFERS = sa.insert(_transfer)
_INSERT_ENVELOPES = sa.insert(t.Envelope.__table__)
# Every delivery group runs it (``Store.adapter_updated_at``), so it too is built once.
_ADAPTER_UPDATED_AT = sa.select(t.AdapterConfig.__table__.c.updated_at).where(
    t.AdapterConfig.__table__.c.authority_code == sa.bindparam("authority")
)


def _authorities(session: Session) -> dict[str, str]:
    return {
        code: name for code, name in session.execute(sa.select(t.Authority.code, t.Authority.name))
    }


def _insert_transfers(
    session: Session, news: Sequence[NewTransfer], lease: Lease | None
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[Claimed]]:
    """Insert transfers with their envelopes and outbox items, a statement per table for the
    lot, parents first, the items that can be under ``lease``; return their audit records
    (event id, action, detail) to append, and the items held under ``lease``.

    The outbox items are inserted in the order given, so that a case's envelopes to a
    recipient are delivered in the order their events arrived. The transfers are inserted in
    event id order: on PostgreSQL an insert waits for another transaction's uncommitted row
    with its key, so two workers storing the same ids in other orders (a publisher sending
    again) would each wait for the other, and one be ended as deadlocked.
    """
    transfers, envelopes, items, outbound = [], [], [], []
    for new in news:
        event, data = new.event, new.event["data"]
        transfers.append(
            {
                "event_id": event["id"],
                "case_reference": event["subject"],
                "from_authority": data["from_authority"],
                "to_authority": data["to_authority"],
                "mode": data["sharing"]["mode"],
                "purpose": data["sharing"]["purpose"],
                "state": new.state,
                "decision": new.decision,
                "event": event,
                "received_at": new.received_at,
                "updated_at": new.received_at,
                "payload_purged_at": purged_from_the_start(new.state, new.received_at),
            }
        )
        if new.envelope is not None:
            envelopes.append(envelope_values(event["id"], new.envelope))
            items.append(
                item_values(event["id"], data["to_authority"], event["subject"], new.received_at)
            )
            outbound.append(
                OutboundEnvelope(
                    envelope_id=new.envelope.envelope_id,
                    event_id=event["id"],
                    to_authority=data["to_authority"],
                    jws=new.envelope.jws,
                    sha256=new.envelope.sha256,
                )
            )
    transfers.sort(key=lambda row: row["event_id"])
    for insert, rows in ((_INSERT_TRANSFERS, transfers), (_INSERT_ENVELOPES, envelopes)):
        if rows:
            session.execute(insert, rows)
    held = insert_items(session, items, outbound, lease) if items else []
    return [(new.event["id"], e.action, e.detail) for new in news for e in new.audit], held
