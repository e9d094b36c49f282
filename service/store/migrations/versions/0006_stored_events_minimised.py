"""Stored events hold no more of the case than was sent.

Until now the relay kept every transfer's event as received, whole, until retention purged it,
the categories its basis withheld included. Now a transfer keeps its event whole only while it
is parked; once its basis is decided, the stored event carries only the categories forwarded
(``permitted_categories`` in its recorded decision, as the signed envelope has them), and a
withheld transfer none. This migration minimises the events of transfers already shared
(signed, delivered or failed). It changes no envelope, audit record or state: the JWS already
held only what was sent, and the audit's ``minimised`` record lists what was withheld. Transfers
already withheld keep their case until retention purges it, audited, as before; parked ones,
and ones already purged, are not touched.

It reads and rewrites the shared transfers 500 at a time, one transaction in all: on a large
table, run ``caf-relay db upgrade`` before starting the new release, not at a worker's start.

Downgrading changes nothing: the case data removed is not restored.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 06:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SHARED = ("signed", "delivered", "failed")
ROWS_AT_A_TIME = 500


def upgrade() -> None:
    document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    transfers = sa.table(
        "transfers",
        sa.column("event_id", sa.String()),
        sa.column("state", sa.String()),
        sa.column("decision", document),
        sa.column("event", document),
        sa.column("payload_purged_at", sa.DateTime(timezone=True)),
    )
    # Not ``state.in_(SHARED)``: an expanding IN cannot be part of the executemany rewrite.
    shared = sa.or_(*(transfers.c.state == state for state in SHARED))
    still_held = sa.and_(shared, transfers.c.payload_purged_at.is_(None))
    rewrite = (
        sa.update(transfers)
        .where(transfers.c.event_id == sa.bindparam("id"))
        .where(still_held)  # not purged meanwhile by a worker of the release before
        .values(event=sa.bindparam("kept"))
    )
    connection = op.get_bind()
    after = ""
    while True:
        rows = connection.execute(
            sa.select(transfers.c.event_id, transfers.c.decision, transfers.c.event)
            .where(still_held)
            .where(transfers.c.event_id > after)
            .order_by(transfers.c.event_id)
            .limit(ROWS_AT_A_TIME)
        ).all()
        if not rows:
            return
        after = rows[-1].event_id
        kept = [
            {"id": event_id, "kept": _minimised(event, decision["permitted_categories"])}
            for event_id, decision, event in rows
            if "permitted_categories" in decision  # else no record of what was sent: left
        ]
        if kept:
            connection.execute(rewrite, kept)


def _minimised(event: dict, permitted: list[str]) -> dict:
    case = {k: v for k, v in event["data"].get("case", {}).items() if k in permitted}
    return {**event, "data": {**event["data"], "case": case}}


def downgrade() -> None:
    pass
