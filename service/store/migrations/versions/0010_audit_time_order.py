"""How far the audit's ``recorded_at`` runs backwards along ``seq``, kept on the chain head.

A record's time is taken when it is appended and its seq when its transaction commits, so
along seq the times run slightly backwards now and then. An audit search from a time had to
walk the records in seq order from the first until one was that recent (about 0.5 s at 1M
records on PostgreSQL). With the latest time so far and the most any record fell behind it,
the search finds the first record from that time through the ``recorded_at`` index, reading
only the records within that lag of it (``service.domain.audit_time``).

The upgrade reads every record's seq and time once, in seq order (a few seconds a million).

Downgrading drops the two columns; upgrading again computes them from the log, so nothing
is lost.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 09:00:00
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

RECORDS = sa.table(
    "audit_records", sa.column("seq"), sa.column("recorded_at", sa.DateTime(timezone=True))
)
HEAD = sa.table(
    "audit_chain_head",
    sa.column("latest_recorded_at", sa.DateTime(timezone=True)),
    sa.column("max_lag_us"),
)


def upgrade() -> None:
    op.add_column(
        "audit_chain_head",
        sa.Column("latest_recorded_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "audit_chain_head",
        sa.Column("max_lag_us", sa.BigInteger(), nullable=False, server_default="0"),
    )
    times = op.get_bind().execute(
        sa.select(RECORDS.c.recorded_at)
        .order_by(RECORDS.c.seq)
        .execution_options(stream_results=True, yield_per=10_000)
    )
    # As service.domain.audit_time.TimeOrder does, written out so the migration stands alone.
    latest, lag = None, timedelta(0)
    for (moment,) in times:
        if latest is None or moment > latest:
            latest = moment
        else:
            lag = max(lag, latest - moment)
    op.execute(
        HEAD.update().values(latest_recorded_at=latest, max_lag_us=lag // timedelta(microseconds=1))
    )


def downgrade() -> None:
    # In place on both databases (SQLite since 3.35), not by rebuilding the table.
    op.execute("ALTER TABLE audit_chain_head DROP COLUMN max_lag_us")
    op.execute("ALTER TABLE audit_chain_head DROP COLUMN latest_recorded_at")
