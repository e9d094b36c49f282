"""Reference version: a counter that every change to what intake decides on moves on.

Intake keeps the authorities, the ISPs and the broker publishers in memory between batches and
checks, in the transaction that stores a batch, that this counter still reads what it read with
them. Database triggers move it, so a change made by any process, or by hand in SQL, is seen.

Downgrading drops the counter and its triggers; nothing else is lost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WATCHED = ("authorities", "isps", "broker_publishers")
BUMP = "UPDATE reference_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "reference_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO reference_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_reference_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER {table}_reference_changed"
                f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION bump_reference_version()"
            )
        return
    for table in WATCHED:
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_reference_{change.lower()}"
                f" AFTER {change} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER {table}_reference_changed ON {table}")
        op.execute("DROP FUNCTION bump_reference_version()")
    else:
        for table in WATCHED:
            for change in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_reference_{change}")
    op.drop_table("reference_version")
