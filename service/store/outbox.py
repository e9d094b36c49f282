"""The outbox: signed envelopes waiting for delivery, claimed by delivery workers in order.

An envelope enters the outbox in the same transaction as its transfer (``Store.record_intake``),
before the inbound message is acknowledged, so nothing signed can be lost between intake and
delivery. Delivery workers claim due items for a lease; one that dies mid-delivery leaves its
items to be claimed again when the lease runs out (or at once, when it restarts under the same
name), and the recipient gets the same envelope id again, so it can discard the duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from adapters.base import OutboundEnvelope
from contracts.vocabulary import TransferState
from service.access import Principal
from service.domain.isotime import iso
from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction
from service.store.ended_isps import Ended, EndedIsps
from service.store.withdrawals import (
    NOT_WITHDRAWN,
    Withdrawn,
    reinstate,
    seen_by,
    still_withdrawn,
    withdraw,
    withdraw_after_failing,
)

if TYPE_CHECKING:
    from service.store.store import SignedEnvelope

IN_FLIGHT_THEN_FAILED = (
    "In flight when its ISP was suspended, retired or expired; its attempt then failed."
)


@dataclass(frozen=True)
class Lease:
    """Who holds outbox items, and until when: a claim, or new items held at intake for the
    worker that stored them to deliver without claiming them."""

    worker: str
    until: datetime


@dataclass(frozen=True)
class Claimed:
    """An outbox item one delivery worker holds until its lease ends."""

    item_id: int
    envelope: OutboundEnvelope
    case_reference: str
    attempts_before: int
    enqueued_at: datetime
    retry: dict[str, Any] | None
    lease: Lease  # tells this claim from a later one on the item


# Any fixed number; on PostgreSQL, transactions that add outbox rows queue on it until they
# commit (``_in_commit_order``).
HOLD_LOCK_ID = 0x_CAF_0002

# Intake and every recorded delivery run these, so they are built once (``service.store.rows``).
_item = t.OutboxItem.__table__
_envelope = t.Envelope.__table__
_adapter = t.AdapterConfig.__table__
_transfer = t.Transfer.__table__
_TAKE_HOLD_LOCK = sa.select(sa.func.pg_advisory_xact_lock(HOLD_LOCK_ID))
# By (recipient, case), so that the stream index serves it: by case alone it read the outbox.
_WAITING_STREAMS = sa.select(_item.c.to_authority, _item.c.case_reference).where(
    sa.tuple_(_item.c.to_authority, _item.c.case_reference).in_(
        sa.bindparam("streams", expanding=True)
    )
)
_INSERT_ITEMS = sa.insert(_item)
_INSERT_ITEMS_RETURNING_IDS = sa.insert(_item).returning(_item.c.id, sort_by_parameter_order=True)
_ADAPTER_SETTINGS = sa.select(_adapter.c.authority_code, _adapter.c.retry).where(
    _adapter.c.authority_code.in_(sa.bindparam("codes", expanding=True))
)
# The items that would send envelopes now delivered: by envelope, not by item id, which SQLite
# hands out again once the newest item is gone (to a judgement's new envelope for the same
# transfer, say, or to another transfer's), and which a redelivery of the same envelope changes.
_DELETE_ITEMS = sa.delete(_item).where(
    _item.c.event_id.in_(
        sa.select(_envelope.c.event_id)
        .where(_envelope.c.envelope_id.in_(sa.bindparam("envelope_ids", expanding=True)))
        .where(_envelope.c.withdrawn_at.is_(None))
    )
)
_SET_TRANSFER_STATE = (
    sa.update(_transfer)
    .where(_transfer.c.event_id == sa.bindparam("of_event"))
    .values(state=sa.bindparam("new_state"), updated_at=sa.bindparam("at"))
)
_INSERT_ATTEMPTS = sa.insert(t.DeliveryAttempt.__table__)
# The ISP (if any) each of the items a claim chose was signed under, in outbox order.
_ISP_OF_ITEMS = (
    sa.select(_item.c.id, t.Transfer.decision[("isp", "id")].as_string())
    .join(t.Transfer, t.Transfer.event_id == _item.c.event_id)
    .where(_item.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_item.c.id)
)
# Gives up a claim if it is still this very claim (``_still_held``), for many items in one call.
_RELEASE_CLAIM = (
    sa.update(_item)
    .where(
        _item.c.id == sa.bindparam("held_id"),
        _item.c.claimed_by == sa.bindparam("held_by"),
        _item.c.claimed_until == sa.bindparam("held_until"),
    )
    .values(claimed_by=None, claimed_until=None)
)
_ANY_WAITING_IN_STREAMS = (
    sa.select(_item.c.id)
    .where(
        sa.tuple_(_item.c.to_authority, _item.c.case_reference).in_(
            sa.bindparam("streams", expanding=True)
        )
    )
    .limit(1)
)


@dataclass(frozen=True)
class Attempt:
    """One try at delivery, as the delivery worker saw it."""

    attempted_at: datetime
    adapter_type: str | None
    succeeded: bool
    retryable: bool
    detail: str
    duration_ms: int
    receipt: str | None = None


@dataclass(frozen=True)
class Settled:
    """An attempt and what follows it: delivered (with the receipt's audit, if any), due again
    at ``retry_at``, or given up for the reason ``gave_up``."""

    claimed: Claimed
    attempt: Attempt
    receipt: dict | None = None
    retry_at: datetime | None = None
    gave_up: str | None = None


class Outbox:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit
        self._ended = EndedIsps()

    @contextmanager
    def _ended_withdrawn(self, now: datetime) -> Iterator[tuple[Session, Ended]]:
        """A transaction in which what is still to be sent under ISPs ended as of ``now`` has
        been withdrawn first, each audited ``basis_withdrawn`` (``service.store.ended_isps``);
        with what has ended."""
        with self._transaction() as session:
            ended, parked = self._ended.sweep(session, now)
            self._audit_withdrawn(session, ended, parked)
            yield session, ended
        self._ended.swept(ended)

    def withdraw_ended(self, now: datetime) -> None:
        """Withdraw what is still to be sent under ISPs ended as of ``now``, as a claim or a
        redelivery does first, for a caller that does neither (a practitioner's judgement)."""
        with self._ended_withdrawn(now):
            pass

    def _audit_withdrawn(self, session: Session, ended: Ended, parked: list[Withdrawn]) -> None:
        for withdrawn in parked:
            detail = withdrawn.audit_detail() | {"reason": ended.reason(withdrawn.isp_id)}
            self._append_audit(session, withdrawn.event_id, "basis_withdrawn", detail)

    def claim(
        self,
        *,
        worker: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        per_recipient: int,
        in_flight: Mapping[str, int],
    ) -> list[Claimed]:
        """Claim up to ``limit`` due items, at most ``per_recipient`` in flight per authority.

        An item is due when its time has come, nobody holds a live lease on it, and no earlier
        item for the same recipient and case is still waiting. The claim is a conditional update,
        so two workers racing for one item cannot both win it. Nothing under an ISP ended by
        ``now``'s day (expired, suspended, retired) is handed out: it is withdrawn instead
        (``service.store.ended_isps``).
        """
        item, earlier = t.OutboxItem, aliased(t.OutboxItem)
        waiting_behind = (
            sa.exists()
            .where(earlier.to_authority == item.to_authority)
            .where(earlier.case_reference == item.case_reference)
            .where(earlier.id < item.id)
        )
        capped = [code for code, count in in_flight.items() if count >= per_recipient]
        # Rank due items within each recipient, so a recipient with a long backlog cannot fill
        # the candidates and hide another recipient's items behind its own.
        due = (
            sa.select(
                item.id,
                item.to_authority,
                sa.func.row_number()
                .over(partition_by=item.to_authority, order_by=item.id)
                .label("place"),
            )
            .where(item.next_attempt_at <= now)
            .where(sa.or_(item.claimed_until.is_(None), item.claimed_until < now))
            .where(~waiting_behind)
            .where(item.to_authority.not_in(capped))
            .subquery()
        )
        until = now + lease
        with self._ended_withdrawn(now) as (session, ended):
            candidates = session.execute(
                sa.select(due.c.id, due.c.to_authority)
                .where(due.c.place <= per_recipient)
                .order_by(due.c.id)
                .limit(limit * per_recipient)
            ).all()
            chosen, taken = [], dict(in_flight)
            for item_id, recipient in candidates:
                if len(chosen) < limit and taken.get(recipient, 0) < per_recipient:
                    chosen.append(item_id)
                    taken[recipient] = taken.get(recipient, 0) + 1
            if ended.versions:
                chosen = self._withdraw_ended(session, ended, chosen, now)
            if not chosen:
                return []
            session.execute(
                sa.update(item)
                .where(item.id.in_(chosen))
                .where(sa.or_(item.claimed_until.is_(None), item.claimed_until < now))
                .values(claimed_by=worker, claimed_until=until)
                .execution_options(synchronize_session=False)
            )
            return _claimed_by(session, Lease(worker, until), item.id.in_(chosen))

    def _withdraw_ended(
        self, session: Session, ended: Ended, chosen: list[int], now: datetime
    ) -> list[int]:
        """``chosen`` but for the items signed under an ISP that has ended, whose ISPs' waiting
        transfers are withdrawn, as a sweep does: a batch stored after the sweep, or an item
        whose holder died, would otherwise be sent under it."""
        under = session.execute(_ISP_OF_ITEMS, {"ids": chosen}).all()
        stale = {isp_id for _, isp_id in under if isp_id in ended.versions}
        if not stale:
            return chosen
        endings = ended.endings()
        parked = withdraw(session, {isp_id: endings[isp_id] for isp_id in stale}, now)
        self._audit_withdrawn(session, ended, parked)
        return [item_id for item_id, isp_id in under if isp_id not in stale]

    def release(self, worker: str) -> int:
        """Give up every lease ``worker`` holds: a restarted worker's claims are stale."""
        with self._transaction() as session:
            result = session.execute(
                sa.update(t.OutboxItem)
                .where(t.OutboxItem.claimed_by == worker)
                .values(claimed_by=None, claimed_until=None)
            )
            return result.rowcount

    def next_due(self) -> datetime | None:
        """When the earliest waiting item becomes due, to know how long a worker may sleep."""
        with self._transaction() as session:
            return session.scalar(sa.select(sa.func.min(t.OutboxItem.next_attempt_at)))

    def summary(self, viewer: str | None = None) -> tuple[int, datetime | None]:
        """How many items wait, and since when the oldest has: all, or those of the transfers
        ``viewer`` (an authority) sees."""
        item = t.OutboxItem
        statement = sa.select(sa.func.count(), sa.func.min(item.enqueued_at))
        if viewer:
            statement = statement.join(t.Transfer, t.Transfer.event_id == item.event_id).where(
                seen_by(viewer)
            )
        with self._transaction() as session:
            count, oldest = session.execute(statement).one()
            return count, oldest

    def record(self, settled: Sequence[Settled], unattempted: Sequence[Claimed] = ()) -> bool:
        """Record a group's attempts and what follows each, in one transaction, and give up the
        claims on items not attempted (they are due again at once, to any worker). True if
        envelopes of the same recipients and cases are still waiting, and so may now be due.

        The delivered items take one statement per table for the group, not one per item.
        """
        audit: list[tuple[str, str, dict[str, Any]]] = []
        delivered: list[Settled] = []
        states: list[tuple[Claimed, str, datetime]] = []
        still_to_send: list[str] = []  # failed attempts whose item this claim still held
        with self._transaction() as session:
            for outcome in settled:
                claimed, attempt = outcome.claimed, outcome.attempt
                if attempt.succeeded:
                    delivered.append(outcome)
                    states.append((claimed, TransferState.DELIVERED, attempt.attempted_at))
                    audit += _delivered_audit(outcome)
                elif outcome.retry_at is not None:
                    held, record = self._retry_later(session, claimed, attempt, outcome.retry_at)
                    audit.append(record)
                    if held:
                        still_to_send.append(claimed.envelope.event_id)
                elif self._failed(session, claimed):
                    still_to_send.append(claimed.envelope.event_id)
                    states.append((claimed, TransferState.FAILED, attempt.attempted_at))
                    detail = _attempt_detail(claimed, attempt) | {"gave_up": outcome.gave_up or ""}
                    audit.append((claimed.envelope.event_id, "failed", detail))
                else:
                    detail = _attempt_detail(claimed, attempt) | {"claim_lost": True}
                    audit.append((claimed.envelope.event_id, "delivery_failed", detail))
            if delivered:
                # Even if the claim ran out meanwhile: the envelope has arrived, whoever else is
                # sending it again.
                envelope_ids = [outcome.claimed.envelope.envelope_id for outcome in delivered]
                deleted = session.execute(_DELETE_ITEMS, {"envelope_ids": envelope_ids}).rowcount
                if deleted < len(envelope_ids):
                    states = self._after_withdrawals(session, delivered, states)
            if states:
                session.execute(
                    _SET_TRANSFER_STATE,
                    [
                        {"of_event": claimed.envelope.event_id, "new_state": state, "at": at}
                        for claimed, state, at in states
                    ],
                )
            if still_to_send:
                # In flight when its ISP was suspended, retired or expired, it is sent no more
                # under it.
                now = max(o.attempt.attempted_at for o in settled)
                ended = self._ended.as_of(session, now).endings()
                for withdrawn in withdraw_after_failing(session, still_to_send, ended, now):
                    detail = withdrawn.audit_detail() | {"reason": IN_FLIGHT_THEN_FAILED}
                    audit.append((withdrawn.event_id, "basis_withdrawn", detail))
            if settled:
                session.execute(_INSERT_ATTEMPTS, [_attempt_row(o) for o in settled])
            if unattempted:
                session.execute(
                    _RELEASE_CLAIM,
                    [
                        {
                            "held_id": c.item_id,
                            "held_by": c.lease.worker,
                            "held_until": c.lease.until,
                        }
                        for c in unattempted
                    ],
                )
            for event_id, action, detail in audit:
                self._append_audit(session, event_id, action, detail)
            return bool(unattempted) or _still_waiting(session, [o.claimed for o in settled])

    def _after_withdrawals(
        self,
        session: Session,
        delivered: Sequence[Settled],
        states: list[tuple[Claimed, str, datetime]],
    ) -> list[tuple[Claimed, str, datetime]]:
        """Some delivered items were gone: taken by another worker's delivery, or withdrawn by a
        suspension after their lease ran out (``service.store.withdrawals``). Give a withdrawn
        envelope back to its transfer, still parked, and return ``states`` without those whose
        transfer a judgement has decided since: it keeps that judgement's state."""
        envelope_ids = [outcome.claimed.envelope.envelope_id for outcome in delivered]
        for event_id, detail in reinstate(session, envelope_ids):
            self._append_audit(session, event_id, "basis_reinstated", detail)
        left = still_withdrawn(session, envelope_ids)
        return [state for state in states if state[0].envelope.envelope_id not in left]

    @staticmethod
    def _retry_later(
        session: Session, claimed: Claimed, attempt: Attempt, retry_at: datetime
    ) -> tuple[bool, tuple[str, str, dict[str, Any]]]:
        """Put the item back, due again at ``retry_at``; return whether this claim still held
        it, and the attempt's audit record.

        If the claim ran out meanwhile and another worker holds the item, only the attempt is
        recorded: the item's schedule is the new holder's to keep.
        """
        held = session.execute(
            sa.update(t.OutboxItem)
            .where(_still_held(claimed))
            .values(
                attempts=t.OutboxItem.attempts + 1,
                next_attempt_at=retry_at,
                claimed_by=None,
                claimed_until=None,
            )
        ).rowcount
        detail = _attempt_detail(claimed, attempt)
        detail |= {"retry_at": iso(retry_at)} if held else {"claim_lost": True}
        return bool(held), (claimed.envelope.event_id, "delivery_failed", detail)

    @staticmethod
    def _failed(session: Session, claimed: Claimed) -> bool:
        """Take the item out after its last failed attempt, if this claim still holds it (the
        transfer is then failed until someone redelivers it); False if the claim was lost."""
        return bool(session.execute(sa.delete(t.OutboxItem).where(_still_held(claimed))).rowcount)

    def redeliver(self, event_id: str, now: datetime, by: Principal) -> bool:
        """Put a failed transfer's envelope back in the outbox, audited as ``by``'s request;
        False if it is not failed, as when the ISP it was signed under has expired by ``now``'s
        day (the transfer then awaits a judgement: ``service.store.ended_isps``)."""
        with self._ended_withdrawn(now) as (session, _):
            transfer = session.get(t.Transfer, event_id, with_for_update=True)
            if transfer is None or transfer.state != TransferState.FAILED:
                return False
            _in_commit_order(session)
            session.add(new_item(transfer, now))
            transfer.state, transfer.updated_at = TransferState.SIGNED, now
            self._append_audit(session, event_id, "redelivery", {"by": by.describe()})
            return True


def _still_waiting(session: Session, claimed: Sequence[Claimed]) -> bool:
    """Whether any envelope of these items' recipients and cases is in the outbox."""
    if not claimed:
        return False
    streams = list({(c.envelope.to_authority, c.case_reference) for c in claimed})
    return session.execute(_ANY_WAITING_IN_STREAMS, {"streams": streams}).first() is not None


def _still_held(claimed: Claimed) -> sa.ColumnElement[bool]:
    """The item is still under this very claim (not released, retaken or finished)."""
    item = t.OutboxItem
    return sa.and_(
        item.id == claimed.item_id,
        item.claimed_by == claimed.lease.worker,
        item.claimed_until == claimed.lease.until,
    )


def stage_delivery(session: Session, transfer: t.Transfer, envelope: SignedEnvelope) -> None:
    """Keep a transfer's signed envelope and put it in the outbox, due now, in ``session``."""
    _in_commit_order(session)
    session.add(t.Envelope(**envelope_values(transfer.event_id, envelope)))
    session.add(new_item(transfer, envelope.issued_at))


def _in_commit_order(session: Session) -> None:
    """Have the outbox rows ``session`` adds get their ids in the order of the commits.

    A claim takes a stream's rows in id order among those committed, and on PostgreSQL a
    sequence hands out ids at insert: a row whose transaction commits after a later-numbered
    one would go out after it. So the transactions that add rows queue on one lock until they
    commit. On SQLite every transaction already holds the write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_TAKE_HOLD_LOCK)


def envelope_values(event_id: str, envelope: SignedEnvelope) -> dict[str, Any]:
    """The stored row of a transfer's signed envelope."""
    return {
        "envelope_id": envelope.envelope_id,
        "event_id": event_id,
        "kid": envelope.kid,
        "jws": envelope.jws,
        "sha256": envelope.sha256,
        "issued_at": envelope.issued_at,
    }


def new_item(transfer: t.Transfer, now: datetime) -> t.OutboxItem:
    """A transfer's envelope, due for delivery now."""
    return t.OutboxItem(
        **item_values(transfer.event_id, transfer.to_authority, transfer.case_reference, now)
    )


def item_values(
    event_id: str, to_authority: str, case_reference: str, now: datetime
) -> dict[str, Any]:
    """The outbox row of an envelope due for delivery now."""
    return {
        "event_id": event_id,
        "to_authority": to_authority,
        "case_reference": case_reference,
        "enqueued_at": now,
        "next_attempt_at": now,
        "attempts": 0,
        "claimed_by": None,
        "claimed_until": None,
    }


def _delivered_audit(outcome: Settled) -> list[tuple[str, str, dict[str, Any]]]:
    """A delivery's audit records: the delivery, and what its receipt showed, if it had one."""
    event_id = outcome.claimed.envelope.event_id
    audit = [(event_id, "delivered", _attempt_detail(outcome.claimed, outcome.attempt))]
    if outcome.receipt is not None:
        audit.append((event_id, "receipt", outcome.receipt))
    return audit


def _attempt_row(outcome: Settled) -> dict[str, Any]:
    """The stored row of one delivery attempt."""
    attempt = outcome.attempt
    return {
        "envelope_id": outcome.claimed.envelope.envelope_id,
        "attempted_at": attempt.attempted_at,
        "adapter_type": attempt.adapter_type,
        "succeeded": attempt.succeeded,
        "retryable": attempt.retryable,
        "detail": attempt.detail,
        "duration_ms": attempt.duration_ms,
        "receipt": attempt.receipt,
    }


def _attempt_detail(claimed: Claimed, attempt: Attempt) -> dict[str, Any]:
    return {
        "envelope_id": claimed.envelope.envelope_id,
        "attempt": claimed.attempts_before + 1,
        "adapter_type": attempt.adapter_type,
        "detail": attempt.detail,
    }


def insert_items(
    session: Session,
    rows: Sequence[dict[str, Any]],
    envelopes: Sequence[OutboundEnvelope],
    lease: Lease | None,
) -> list[Claimed]:
    """Insert new outbox rows (each of ``envelopes``), in order; with a ``lease``, hold under it
    the rows a claim could take now and return them, claimed, without reading them back.

    Those are the first row of each recipient and case with no item of theirs already waiting:
    the others must wait their turn, as they would for a claim. The inserts queue until commit
    (``_in_commit_order``), which also keeps two workers from each taking the other's
    uncommitted item for absent.
    """
    _in_commit_order(session)
    if lease is None:
        session.execute(_INSERT_ITEMS, rows)
        return []
    streams = list({(row["to_authority"], row["case_reference"]) for row in rows})
    waiting = set(session.execute(_WAITING_STREAMS, {"streams": streams}))
    for row in rows:
        stream = (row["to_authority"], row["case_reference"])
        if stream not in waiting:
            row.update(claimed_by=lease.worker, claimed_until=lease.until)
        waiting.add(stream)
    ids = session.scalars(_INSERT_ITEMS_RETURNING_IDS, rows).all()
    held = [
        (item_id, row, envelope)
        for item_id, row, envelope in zip(ids, rows, envelopes, strict=True)
        if row["claimed_by"] is not None
    ]
    if not held:
        return []
    codes = list({row["to_authority"] for _, row, _ in held})
    retries = dict(session.execute(_ADAPTER_SETTINGS, {"codes": codes}).all())
    claimed = []
    for item_id, row, envelope in held:
        claimed.append(
            Claimed(
                item_id=item_id,
                envelope=envelope,
                case_reference=row["case_reference"],
                attempts_before=0,
                enqueued_at=row["enqueued_at"],
                retry=retries.get(row["to_authority"]),
                lease=lease,
            )
        )
    return claimed


def _claimed_by(session: Session, lease: Lease, which: sa.ColumnElement[bool]) -> list[Claimed]:
    """The items ``which`` under this very lease, with what delivering them needs, in outbox
    order."""
    item = t.OutboxItem
    rows = session.execute(
        sa.select(item, t.Envelope, t.AdapterConfig.retry)
        .join(t.Envelope, sa.and_(t.Envelope.event_id == item.event_id, NOT_WITHDRAWN))
        .outerjoin(t.AdapterConfig, t.AdapterConfig.authority_code == item.to_authority)
        .where(which)
        .where(item.claimed_by == lease.worker)
        .where(item.claimed_until == lease.until)
        .order_by(item.id)
    ).all()
    return [
        Claimed(
            item_id=row.id,
            envelope=OutboundEnvelope(
                envelope_id=envelope.envelope_id,
                event_id=row.event_id,
                to_authority=row.to_authority,
                jws=envelope.jws,
                sha256=envelope.sha256,
            ),
            case_reference=row.case_reference,
            attempts_before=row.attempts,
            enqueued_at=row.enqueued_at,
            retry=retry,
            lease=lease,
        )
        for row, envelope, retry in rows
    ]
