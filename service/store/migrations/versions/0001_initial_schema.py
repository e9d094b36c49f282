"""The schema: authorities, adapters, ISPs, transfers, envelopes, the outbox, delivery attempts,
and the audit trail (hash-chained records, chain head, checkpoints, search index).

Revision ID: 0001
Revises:
Create Date: 2026-11-25 09:40:00

Migrations hold their own copies of types and never import application code, so that an old
revision still runs after the code has moved on.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "audit_child_keys",
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("child_key", "event_id"),
    )
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", JSON_DOCUMENT, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_records_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_records_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_records_seq"), ["seq"], unique=True)

    op.create_table(
        "audit_subjects",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("case_reference", sa.String(length=200), nullable=False),
        sa.Column("from_authority", sa.String(length=16), nullable=False),
        sa.Column("to_authority", sa.String(length=16), nullable=False),
        sa.Column("basis_kind", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_subjects_basis_kind"), ["basis_kind"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_subjects_case_reference"), ["case_reference"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_subjects_from_authority"), ["from_authority"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_subjects_to_authority"), ["to_authority"], unique=False
        )

    op.create_table(
        "authorities",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("jwks", JSON_DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "isps",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("document", JSON_DOCUMENT, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("isp_id", "version", name="uq_isps_id_version"),
    )
    op.create_table(
        "adapter_configs",
        sa.Column("authority_code", sa.String(length=16), nullable=False),
        sa.Column("adapter_type", sa.String(length=64), nullable=False),
        sa.Column("settings", JSON_DOCUMENT, nullable=False),
        sa.Column("secrets_sealed", sa.Text(), nullable=False),
        sa.Column("retry", JSON_DOCUMENT, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authority_code"],
            ["authorities.code"],
        ),
        sa.PrimaryKeyConstraint("authority_code"),
    )
    op.create_table(
        "transfers",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("case_reference", sa.String(length=200), nullable=False),
        sa.Column("from_authority", sa.String(length=16), nullable=False),
        sa.Column("to_authority", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("decision", JSON_DOCUMENT, nullable=False),
        sa.Column("event", JSON_DOCUMENT, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_authority"],
            ["authorities.code"],
        ),
        sa.ForeignKeyConstraint(
            ["to_authority"],
            ["authorities.code"],
        ),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfers_case_reference"), ["case_reference"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfers_from_authority"), ["from_authority"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_transfers_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_transfers_to_authority"), ["to_authority"], unique=False
        )

    op.create_table(
        "envelopes",
        sa.Column("envelope_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["transfers.event_id"],
        ),
        sa.PrimaryKeyConstraint("envelope_id"),
        sa.UniqueConstraint("event_id"),
    )
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
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["transfers.event_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_stream", ["to_authority", "case_reference", "id"], unique=False
        )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("envelope_id", sa.String(length=36), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("adapter_type", sa.String(length=64), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["envelope_id"],
            ["envelopes.envelope_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_envelope_id"), ["envelope_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_envelope_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_stream")
        batch_op.drop_index(batch_op.f("ix_outbox_next_attempt_at"))

    op.drop_table("outbox")
    op.drop_table("envelopes")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_to_authority"))
        batch_op.drop_index(batch_op.f("ix_transfers_state"))
        batch_op.drop_index(batch_op.f("ix_transfers_from_authority"))
        batch_op.drop_index(batch_op.f("ix_transfers_case_reference"))

    op.drop_table("transfers")
    op.drop_table("adapter_configs")
    op.drop_table("isps")
    op.drop_table("dead_letters")
    op.drop_table("authorities")
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_subjects_to_authority"))
        batch_op.drop_index(batch_op.f("ix_audit_subjects_from_authority"))
        batch_op.drop_index(batch_op.f("ix_audit_subjects_case_reference"))
        batch_op.drop_index(batch_op.f("ix_audit_subjects_basis_kind"))

    op.drop_table("audit_subjects")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_audit_records_event_id"))

    op.drop_table("audit_records")
    op.drop_table("audit_child_keys")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")
