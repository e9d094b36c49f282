"""Outbox for delivery with retries, receipts, per-adapter retry settings, authorities' keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 08:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("to_authority", sa.String(length=16), nullable=False),
        sa.Column("case_reference", sa.String(length=200), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["transfers.event_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_stream", ["to_authority", "case_reference", "id"])
        batch_op.create_index(batch_op.f("ix_outbox_next_attempt_at"), ["next_attempt_at"])
    with op.batch_alter_table("authorities") as batch_op:
        batch_op.add_column(sa.Column("jwks", JSON_DOCUMENT, nullable=True))
    with op.batch_alter_table("adapter_configs") as batch_op:
        batch_op.add_column(sa.Column("retry", JSON_DOCUMENT, nullable=True))
    with op.batch_alter_table("delivery_attempts") as batch_op:
        batch_op.add_column(sa.Column("receipt", sa.Text(), nullable=True))
    # Signed envelopes stored before the outbox existed are still owed a delivery.
    op.execute(
        "INSERT INTO outbox (event_id, to_authority, case_reference, enqueued_at,"
        " next_attempt_at, attempts)"
        " SELECT event_id, to_authority, case_reference, updated_at, updated_at, 0"
        " FROM transfers WHERE state = 'signed' ORDER BY received_at"
    )


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as batch_op:
        batch_op.drop_column("receipt")
    with op.batch_alter_table("adapter_configs") as batch_op:
        batch_op.drop_column("retry")
    with op.batch_alter_table("authorities") as batch_op:
        batch_op.drop_column("jwks")
    op.drop_table("outbox")
