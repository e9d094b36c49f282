"""What the operators' metrics count, read from the store with one aggregate query each.

Everything is derived from rows every process writes anyway (transfers, delivery attempts, the
audit), so the numbers are the same whichever web process is scraped, however many workers
deliver, and across restarts. Each query aggregates in the database; none loads rows into
Python. Each counts either everything or, given a ``viewer`` (an authority), only the
transfers that authority's callers see (``seen_by``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from service.store import tables as t
from service.store.audit_log import Transaction
from service.store.withdrawals import seen_by


class _SecondsBetween(FunctionElement):
    """``end - start`` in seconds; each database spells date arithmetic its own way."""

    type = sa.Float()
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_between(element, compiler, **kw) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(_SecondsBetween, "sqlite")
def _seconds_between_sqlite(element, compiler, **kw) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@dataclass(frozen=True)
class Latencies:
    """Delivered envelopes by latency: how many took at most each bound, all, and their sum."""

    within: list[int]  # one count per bound, in the bounds' order
    count: int
    total_seconds: float


@dataclass(frozen=True)
class FailureCount:
    adapter_type: str | None  # None: the recipient had no usable adapter
    authority: str
    failures: int


class OperationsCounts:
    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    def transfers_by_basis(self, viewer: str | None = None) -> dict[str, int]:
        """Transfers by what their decision rests on: ``isp``, ``judgement`` or ``none``.

        The same rule as ``service.domain.model.basis_kind``, over the stored decisions.
        """
        decision = t.Transfer.decision
        kind = sa.case(
            (decision["isp"].as_string().is_not(None), "isp"),
            (decision["judgement"].as_string().is_not(None), "judgement"),
            else_="none",
        ).label("kind")
        statement = sa.select(kind, sa.func.count()).group_by(kind)
        if viewer:
            statement = statement.where(seen_by(viewer))
        with self._transaction() as session:
            return {basis: count for basis, count in session.execute(statement)}

    def rejections(self) -> dict[str, int]:
        """Inbound events refused, by rejection (contract_violation, forged_sender, ...)."""
        record = t.AuditRecord
        rejection = record.detail["rejection"].as_string().label("rejection")
        with self._transaction() as session:
            rows = session.execute(
                sa.select(rejection, sa.func.count())
                .where(record.action == "rejected")
                .group_by(rejection)
            )
            return {kind: count for kind, count in rows}

    def delivery_failures(self, viewer: str | None = None) -> list[FailureCount]:
        """Failed delivery attempts by adapter type and receiving authority.

        A viewer's count takes in the attempts on every transfer it sent or that was sent to it,
        not only on those it sees now: one parked again since its attempts (its ISP suspended)
        would otherwise take them out, and a counter that falls is, to Prometheus, a restart,
        after which all it counts is counted again as new.
        """
        attempt = t.DeliveryAttempt
        statement = (
            sa.select(attempt.adapter_type, t.Transfer.to_authority, sa.func.count())
            .join(t.Envelope, t.Envelope.envelope_id == attempt.envelope_id)
            .join(t.Transfer, t.Transfer.event_id == t.Envelope.event_id)
            .where(sa.not_(attempt.succeeded))
            .group_by(attempt.adapter_type, t.Transfer.to_authority)
        )
        if viewer:
            transfer = t.Transfer
            statement = statement.where(
                sa.or_(transfer.from_authority == viewer, transfer.to_authority == viewer)
            )
        with self._transaction() as session:
            return [FailureCount(*row) for row in session.execute(statement)]

    def delivery_latencies(self, bounds: Sequence[float], viewer: str | None = None) -> Latencies:
        """From an envelope's signing, when it entered the outbox, to the end of the first
        attempt that delivered it: one figure an envelope, though one whose claim ran out
        mid-attempt may have gone twice; a redelivered transfer counts from its first signing,
        the wait its recipient actually had."""
        attempt = t.DeliveryAttempt
        latency = sa.cast(
            _SecondsBetween(t.Envelope.issued_at, attempt.attempted_at)
            + attempt.duration_ms / 1000.0,
            sa.Float,
        )
        firsts = (
            sa.select(sa.func.min(latency).label("seconds"))
            .select_from(attempt)
            .join(t.Envelope, t.Envelope.envelope_id == attempt.envelope_id)
            .where(attempt.succeeded)
            .group_by(attempt.envelope_id)
        )
        if viewer:
            firsts = firsts.join(t.Transfer, t.Transfer.event_id == t.Envelope.event_id).where(
                seen_by(viewer)
            )
        first = firsts.subquery()
        within = [sa.func.sum(sa.case((first.c.seconds <= bound, 1), else_=0)) for bound in bounds]
        with self._transaction() as session:
            count, total, *counts = session.execute(
                sa.select(sa.func.count(), sa.func.sum(first.c.seconds), *within)
            ).one()
        return Latencies([int(c or 0) for c in counts], count, float(total or 0.0))
