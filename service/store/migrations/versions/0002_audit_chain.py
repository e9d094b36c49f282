"""Audit trail that proves itself: hash chain, chain head, signed checkpoints, search index,
and purgeable payloads.

Existing audit records are chained in the order they were written (by id). Child keys cannot be
derived for them here (the audit key is not available to migrations), so they are found by case
reference, authority and basis, not by child.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.domain.audit_chain import GENESIS, record_hash
from service.store.audit_index import index_records
from service.store.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    head_seq, head_hash = _chain_existing_records()
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f("ix_audit_records_seq"), ["seq"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_audit_records_recorded_at"), ["recorded_at"], unique=False
        )

    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": head_seq, "hash": head_hash}])
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
        "audit_subjects",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("case_reference", sa.String(length=200), nullable=False),
        sa.Column("from_authority", sa.String(length=16), nullable=False),
        sa.Column("to_authority", sa.String(length=16), nullable=False),
        sa.Column("basis_kind", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        for column in ("case_reference", "from_authority", "to_authority", "basis_kind"):
            batch_op.create_index(batch_op.f(f"ix_audit_subjects_{column}"), [column])
    op.create_table(
        "audit_child_keys",
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("child_key", "event_id"),
    )
    _index_existing_records()

    with op.batch_alter_table("envelopes", schema=None) as batch_op:
        batch_op.alter_column("jws", existing_type=sa.Text(), nullable=True)
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payload_purged_at", sa.DateTime(timezone=True), nullable=True)
        )


_records = sa.table(
    "audit_records",
    sa.column("id", sa.Integer()),
    sa.column("recorded_at", UtcDateTime()),
    sa.column("event_id", sa.String()),
    sa.column("action", sa.String()),
    sa.column("detail", JSON_DOCUMENT),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def _chain_existing_records() -> tuple[int, str]:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            _records.c.id,
            _records.c.recorded_at,
            _records.c.event_id,
            _records.c.action,
            _records.c.detail,
        ).order_by(_records.c.id)
    ).all()
    seq, prev = 0, GENESIS
    for row in rows:
        seq += 1
        digest = record_hash(seq, row.recorded_at, row.event_id, row.action, row.detail, prev)
        connection.execute(
            sa.update(_records)
            .where(_records.c.id == row.id)
            .values(seq=seq, prev_hash=prev, hash=digest)
        )
        prev = digest
    return seq, prev


def _index_existing_records() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_records.c.event_id, _records.c.action, _records.c.detail).order_by(
            _records.c.seq
        )
    ).all()
    index_records(connection, [tuple(row) for row in rows])


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("payload_purged_at")
    op.execute(sa.text("UPDATE envelopes SET jws = '' WHERE jws IS NULL"))
    with op.batch_alter_table("envelopes", schema=None) as batch_op:
        batch_op.alter_column("jws", existing_type=sa.Text(), nullable=False)
    op.drop_table("audit_child_keys")
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        for column in ("case_reference", "from_authority", "to_authority", "basis_kind"):
            batch_op.drop_index(batch_op.f(f"ix_audit_subjects_{column}"))
    op.drop_table("audit_subjects")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_audit_records_seq"))
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
