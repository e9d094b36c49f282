"""Envelopes withdrawn when the ISP they were signed under is suspended, retired or expires
before they are sent.

A suspension or retirement acts at once (DESIGN rule 1: a routine flow is shared under an
*active* ISP): a transfer signed under any version of the ISP and not yet delivered, whether
waiting in the outbox (due, or retrying while its recipient is down) or failed (for an admin to
redeliver), goes back to ``awaiting_judgement``, in the transaction that records the suspension
(or retirement: every word of "suspension" here holds for both). Its envelope is withdrawn
(never sent; its JWS dropped, its id, digest and delivery attempts kept) and its outbox item
removed. The stored event stays as it is: it already holds only the categories that would have
gone, so a judgement can share at most those.

Expiry withdraws the same way, without anyone recording it: ``service.store.ended_isps`` runs
``withdraw`` for the ISPs expired that day before the outbox hands anything out or takes
anything back, and ``withdraw_after_failing`` parks an envelope in flight at expiry whose
attempt then fails.

An envelope under a live lease is in flight (claimed, or handed over by intake to its worker's
delivery process): it is left alone and delivered as decided. A delivery starts only with a
whole attempt's time left on its lease, so one recorded after its envelope was withdrawn (its
lease ran out before the suspension, its record came after) had arrived before the suspension:
``reinstate`` then gives the transfer its envelope and basis back, so that no envelope is
delivered while the store says the transfer awaits a judgement, or that a practitioner's
judgement not to share, recorded in between, kept it from its recipient.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from contracts.vocabulary import TransferState
from service.domain.isp_register import BINDS_NO_ONE
from service.domain.judgement_digests import judgement_digest
from service.domain.model import reinstated_decision, withdrawn_decision
from service.store import tables as t

REINSTATED = "Delivered before the change to its ISP that withdrew it was recorded."
OVERTAKEN = (
    f"{REINSTATED} The judgement not to share, recorded since, came after it had arrived: the "
    "recipient has it."
)
NOT_WITHDRAWN = t.Envelope.withdrawn_at.is_(None)
WITHDRAWN = t.Envelope.withdrawn_at.is_not(None)
# Not delivered: waiting in the outbox, or failed.
UNDELIVERED = (TransferState.SIGNED, TransferState.FAILED)
# Transfers not sent to their recipient, which therefore sees neither them nor the judgement not
# to share: a parked transfer is the sender's to decide, a withheld one the sender's decision.
UNSENT = frozenset({TransferState.AWAITING_JUDGEMENT, TransferState.WITHHELD})


def seen_by(authority: str) -> sa.ColumnElement[bool]:
    """The transfers an authority's callers (but a global admin) see, in listings and figures
    alike: those it sent, and those to it once sent."""
    transfer = t.Transfer
    return sa.or_(
        transfer.from_authority == authority,
        sa.and_(transfer.to_authority == authority, transfer.state.not_in(UNSENT)),
    )


class Ending(NamedTuple):
    """The version of an ISP that ended its basis for what is still to be sent, and why:
    that version's status (suspended, retired), or ``expired``."""

    version: int
    status: str


@dataclass(frozen=True)
class Withdrawn:
    """A transfer parked again: which envelope was withdrawn, from which state and version."""

    event_id: str
    isp_id: str
    envelope_id: str
    state: str  # signed or failed, before
    isp_version: int  # the version it was signed under
    ended_by: int  # the suspended, retired or expired version that withdrew it
    status: str  # suspended or retired (that version's status), or expired

    def audit_detail(self) -> dict[str, Any]:
        """Its ``basis_withdrawn`` record's detail, but for who and why."""
        return {
            "isp_id": self.isp_id,
            "version": self.isp_version,
            "ended_by_version": self.ended_by,
            "status": self.status,
            "envelope_id": self.envelope_id,
            "was": self.state,
        }


def withdraw(session: Session, ended: Mapping[str, Ending], now: datetime) -> list[Withdrawn]:
    """Park again, in ``session``, every undelivered transfer signed under any version of an
    ISP of ``ended`` (by id: the version that ended it, and why) whose envelope is not in
    flight; return them in the order they were received.

    The outbox items go first, each only if no lease holds it, in the order a delivery's
    record takes its rows (items, then transfers), so neither waits on the other for long.
    """
    transfer, item = t.Transfer, t.OutboxItem
    under_isp = sa.and_(
        transfer.decision[("isp", "id")].as_string().in_(list(ended)),
        transfer.state.in_(UNDELIVERED),
    )
    # A redelivery holding a failed transfer puts its envelope back in the outbox: wait for it
    # (it holds no outbox item), so that the items taken out next include the one it adds.
    session.execute(
        sa.select(transfer.event_id)
        .where(under_isp, transfer.state == TransferState.FAILED)
        .with_for_update()
    ).all()
    taken_out = session.scalars(
        sa.delete(item)
        .where(item.event_id.in_(sa.select(transfer.event_id).where(under_isp)))
        .where(sa.or_(item.claimed_until.is_(None), item.claimed_until < now))
        .returning(item.event_id)
    ).all()
    rows = session.execute(
        sa.select(transfer, t.Envelope.envelope_id)
        .join(t.Envelope, sa.and_(t.Envelope.event_id == transfer.event_id, NOT_WITHDRAWN))
        .where(under_isp)
        .where(sa.or_(transfer.state == TransferState.FAILED, transfer.event_id.in_(taken_out)))
        .order_by(transfer.received_at, transfer.event_id)
        .with_for_update(of=transfer)
    ).all()
    return _park(
        session,
        [
            (parked, envelope_id, *ended[parked.decision["isp"]["id"]])
            for parked, envelope_id in rows
        ],
        now,
    )


def _park(
    session: Session, rows: list[tuple[t.Transfer, str, int, str]], now: datetime
) -> list[Withdrawn]:
    """Park each transfer of ``rows`` (with its envelope's id, and the version and status that
    ended its basis) again: no basis, its envelope withdrawn."""
    withheld = _withheld_before(session, [parked.event_id for parked, *_ in rows])
    withdrawn = []
    for parked, envelope_id, ended_by, status in rows:
        isp = parked.decision["isp"]
        withdrawn.append(
            Withdrawn(
                parked.event_id,
                isp["id"],
                envelope_id,
                parked.state,
                isp["version"],
                ended_by,
                status,
            )
        )
        parked.decision = withdrawn_decision(
            parked.decision, ended_by, status, withheld.get(parked.event_id, ())
        )
        parked.state, parked.updated_at = TransferState.AWAITING_JUDGEMENT, now
    if withdrawn:
        session.execute(
            sa.update(t.Envelope)
            .where(t.Envelope.envelope_id.in_([w.envelope_id for w in withdrawn]))
            .values(withdrawn_at=now, jws=None)
        )
    return withdrawn


def _withheld_before(session: Session, event_ids: list[str]) -> dict[str, list[str]]:
    """What each transfer's latest minimising withheld: no longer in its stored event."""
    if not event_ids:
        return {}
    record = t.AuditRecord
    rows = session.execute(
        sa.select(record.event_id, record.detail)
        .where(record.event_id.in_(event_ids), record.action == "minimised")
        .order_by(record.seq)
    )
    return {event_id: list(detail.get("withheld", [])) for event_id, detail in rows}


def reinstate(session: Session, envelope_ids: Collection[str]) -> list[tuple[str, dict[str, Any]]]:
    """Give back, in ``session``, the envelopes of ``envelope_ids`` found delivered after they
    were withdrawn, with their transfers' bases, where the transfer still awaits a judgement or
    a judgement not to share has been recorded since (it came too late: the recipient has the
    envelope); return the audit records to append (event id, detail). A judgement to share
    sent an envelope of its own, and its transfer keeps that."""
    rows = session.execute(
        sa.select(t.Envelope, t.Transfer)
        .join(t.Transfer, t.Transfer.event_id == t.Envelope.event_id)
        .where(t.Envelope.envelope_id.in_(envelope_ids))
        .where(WITHDRAWN)
        .where(t.Transfer.state.in_(UNSENT))
        .with_for_update(of=t.Transfer)
    ).all()
    audit = []
    for envelope, transfer in rows:
        detail: dict[str, Any] = {"envelope_id": envelope.envelope_id, "reason": REINSTATED}
        if "judgement" in transfer.decision:
            detail |= {
                "reason": OVERTAKEN,
                "overtaken_judgement": judgement_digest(transfer.decision["judgement"]),
            }
        envelope.withdrawn_at = None
        transfer.decision = reinstated_decision(transfer.decision)
        audit.append((transfer.event_id, detail))
    return audit


def still_withdrawn(session: Session, envelope_ids: Collection[str]) -> set[str]:
    """Those of ``envelope_ids`` that are withdrawn, in ``session``."""
    return set(
        session.scalars(
            sa.select(t.Envelope.envelope_id)
            .where(t.Envelope.envelope_id.in_(envelope_ids))
            .where(WITHDRAWN)
        )
    )


def withdraw_after_failing(
    session: Session, event_ids: Collection[str], ended: Mapping[str, Ending], now: datetime
) -> list[Withdrawn]:
    """Park again, in ``session``, those of ``event_ids`` (envelopes in flight at a suspension
    or expiry, whose attempt has just failed, to be retried or failed for good) that were signed
    under an ISP suspended or retired since their envelope was issued, or one of ``ended`` (by
    id: its version in force expired, suspended or retired as of ``now``): a suspension or
    expiry leaves an envelope in flight to be delivered as decided, never to be retried or
    redelivered under an ISP that has ended. Call once the outbox items are settled (items,
    then transfers)."""
    if not event_ids:
        return []
    rows = session.execute(
        sa.select(t.Transfer, t.Envelope)
        .join(t.Envelope, sa.and_(t.Envelope.event_id == t.Transfer.event_id, NOT_WITHDRAWN))
        .where(t.Transfer.event_id.in_(event_ids))
        .where(t.Transfer.state.in_(UNDELIVERED))
        .order_by(t.Transfer.received_at, t.Transfer.event_id)
        .with_for_update(of=t.Transfer)
    ).all()
    to_park = []
    for transfer, envelope in rows:
        isp = transfer.decision.get("isp")
        if isp is None:
            continue
        ending = session.execute(
            sa.select(t.Isp.version, t.Isp.status)
            .where(t.Isp.isp_id == isp["id"], t.Isp.status.in_(BINDS_NO_ONE))
            .where(t.Isp.recorded_at >= envelope.issued_at)
            .order_by(t.Isp.version)
            .limit(1)
        ).first() or ended.get(isp["id"])
        if ending:
            to_park.append((transfer, envelope.envelope_id, *ending))
    if to_park:
        session.execute(
            sa.delete(t.OutboxItem).where(
                t.OutboxItem.event_id.in_([transfer.event_id for transfer, *_ in to_park])
            )
        )
    return _park(session, to_park, now)
