"""64-bit row ids for the tables that grow with every event.

On PostgreSQL the ids of ``audit_records``, ``outbox``, ``delivery_attempts`` and
``dead_letters`` were 32-bit serials: about 2.1 billion rows, which a relay writing several audit
records per event could use up within weeks of sustained bulk syncs, after which every intake
would fail. Both the columns and their sequences become 64-bit. SQLite needs no change: its
``INTEGER PRIMARY KEY`` is already the 64-bit rowid.

``ALTER COLUMN ... TYPE`` rewrites each table under an exclusive lock, so on a large store run
``caf-relay db upgrade`` while the workers are stopped.

Downgrading narrows the ids to 32 bits again on PostgreSQL, and fails if any is beyond
2,147,483,647; on SQLite it changes nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GROWING = ("audit_records", "outbox", "delivery_attempts", "dead_letters")


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    _retype("INTEGER")


def _retype(sql_type: str) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    for table in GROWING:
        sequence = connection.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}
        ).scalar_one()
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id TYPE {sql_type}")
        op.execute(f"ALTER SEQUENCE {sequence} AS {sql_type}")
