"""What intake checks every event against, kept in memory for as long as it is current.

Every batch of events is checked against the authorities (is the code known, and its name), the
ISPs (which one applies) and the broker publishers (may this account send for that authority).
They change a few times a year but were read in a transaction of their own for every batch,
the largest fixed cost of storing one. They are now read once and kept, with the reference
version they were read at: a counter that database triggers move on with every change to those
tables (migration 0003; 0005 for the ISP confirmations), by any process or by hand. The
transaction that stores a batch checks the counter (``check``); if it moved, the batch is not
stored, the copy is dropped, and the caller decides the batch again on a fresh one. So a change
is in force for every batch whose storing transaction starts after it has committed, as when
the tables were read for every batch (then, just before deciding it).

On PostgreSQL the check also holds the counter's row ``FOR SHARE`` until the batch commits. A
change moves the counter early in its transaction, so it waits for the batches checked before
it; and what it does after (a suspension withdrawing the envelopes signed under its ISP) then
sees those batches. Without the lock, a batch checked just before a suspension committed would
be stored after the suspension had looked for its envelopes, and sent under the suspended ISP.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.domain.model import IspTerms
from service.store import tables as t
from service.store.audit_log import Transaction
from service.store.isps import all_terms
from service.store.rows import insert_if_absent

VERSION_ID = 1
_version_row = t.ReferenceVersion.__table__
# Checked by every intake transaction, so built once (``service.store.rows``).
_SELECT_VERSION = sa.select(_version_row.c.version).where(_version_row.c.id == VERSION_ID)
_SELECT_VERSION_FOR_SHARE = _SELECT_VERSION.with_for_update(read=True)  # SQLite: takes turns


@dataclass(frozen=True)
class IntakeReference:
    """The authorities (code -> name), the newest terms of every ISP and the broker publishers
    (broker user -> authority), as of reference ``version``."""

    authorities: dict[str, str]
    isp_terms: list[IspTerms]
    publishers: dict[str, str]
    version: int


class ReferenceChanged(Exception):
    """What a batch was decided on has changed since; decide it again on ``current()``."""


class ReferenceCache:
    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction
        self._lock = threading.Lock()
        self._kept: IntakeReference | None = None

    def current(self) -> IntakeReference:
        """The reference as last read, or as read now if a check found it changed."""
        with self._lock:
            if self._kept is None:
                self._kept = self._read()
            return self._kept

    def check(self, session: Session, reference: IntakeReference) -> None:
        """Raise ``ReferenceChanged`` in ``session``'s transaction if ``reference`` is not the
        current version; the next ``current()`` reads it afresh."""
        if session.scalar(_SELECT_VERSION_FOR_SHARE) != reference.version:
            with self._lock:
                if self._kept is reference:
                    self._kept = None
            raise ReferenceChanged

    def _read(self) -> IntakeReference:
        with self._transaction() as session:
            # The version first: a change committed while the rest is read then makes the next
            # check fail, rather than pass with tables older than the version.
            version = reference_version(session)
            authorities = dict(session.execute(sa.select(t.Authority.code, t.Authority.name)).all())
            publishers = dict(
                session.execute(
                    sa.select(t.BrokerPublisher.broker_user, t.BrokerPublisher.authority_code)
                ).all()
            )
            return IntakeReference(authorities, all_terms(session), publishers, version)


def reference_version(session: Session) -> int:
    """The reference version, in ``session``'s transaction; a new one if its row was deleted,
    as when the tables are emptied: a random start, so that nothing kept from before the
    deletion can match the new row."""
    version = _version(session)
    if version is None:
        row = {"id": VERSION_ID, "version": secrets.randbits(62)}
        insert_if_absent(session, t.ReferenceVersion, row)
        version = _version(session)
    return version


def _version(session: Session) -> int | None:
    return session.scalar(_SELECT_VERSION)
