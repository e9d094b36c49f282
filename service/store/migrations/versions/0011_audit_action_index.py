"""An index for searching the audit by action: (action, seq).

An audit search by action alone (the operator's ``audit search --action child_record_read``,
who read a child's record) walked the records in seq order until it had a page of that action:
for a rare one, or one not there at all, the whole log (93-300 ms at 1M records on PostgreSQL,
growing with it; with the index about 1 ms). The index costs about 3 microseconds an appended
record and 36 MB a million records; building it reads the log once (about 2 s a million).

Downgrading drops the index; nothing else is lost.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 23:10:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_records_action", "audit_records", ["action", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_records_action", table_name="audit_records")
