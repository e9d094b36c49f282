"""Dead letters name their event id: the id a refusal's ``rejected`` audit record is under.

An operator holding a refusal's audit record could find its dead letter only by its reason and
time. The column is nullable: a letter whose body could not be read for an id (not JSON, too
big, no usable ``id``), or kept before this migration, has none. Adding a nullable column
rewrites nothing; the index reads the table once, which retention keeps small.

Downgrading drops the index and the column, and with it every dead letter's event id.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("event_id", sa.String(128), nullable=True))
    op.create_index("ix_dead_letters_event_id", "dead_letters", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_event_id", table_name="dead_letters")
    # On SQLite, batch mode rebuilds the table where ALTER TABLE ... DROP COLUMN falls short.
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.drop_column("event_id")
