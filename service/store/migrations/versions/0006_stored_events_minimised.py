"""Stored events hold no more of the case than was sent.

Until now the relay kept every transfer's event as received, whole, until retention purged it:
the categories its basis withheld included, and the whole case of a transfer a practitioner
decided not to share, for as long as the payload was held. Now a transfer keeps its event
whole only while it is parked; once its basis is decided, the stored event carries only the
categories forwarded (``permitted_categories`` in its recorded decision, as the signed envelope
has them), and a withheld transfer carries none. This migration does the same to the events
already stored. It changes no envelope, audit record or state: the JWS already held only what
was sent.

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

DECIDED = ("signed", "delivered", "failed", "withheld")
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
    connection = op.get_bind()
    to_minimise = connection.scalars(
        sa.select(transfers.c.event_id)
        .where(transfers.c.state.in_(DECIDED))
        .where(transfers.c.payload_purged_at.is_(None))
        .order_by(transfers.c.event_id)
    ).all()
    for start in range(0, len(to_minimise), ROWS_AT_A_TIME):
        ids = to_minimise[start : start + ROWS_AT_A_TIME]
        rows = connection.execute(
            sa.select(
                transfers.c.event_id, transfers.c.state, transfers.c.decision, transfers.c.event
            ).where(transfers.c.event_id.in_(ids))
        )
        for event_id, state, decision, event in rows:
            if state == "withheld":
                permitted = ()
            elif "permitted_categories" in decision:
                permitted = decision["permitted_categories"]
            else:  # no record of what was sent: the event stays as it is, for a person to judge
                continue
            case = {k: v for k, v in event["data"].get("case", {}).items() if k in permitted}
            connection.execute(
                sa.update(transfers)
                .where(transfers.c.event_id == event_id)
                .values(event={**event, "data": {**event["data"], "case": case}})
            )


def downgrade() -> None:
    pass
