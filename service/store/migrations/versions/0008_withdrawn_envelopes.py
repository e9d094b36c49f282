"""Withdrawn envelopes: an ISP suspended takes back the envelopes signed under it not yet sent.

Such a transfer waits for a practitioner's judgement again, and a judgement to share signs a new
envelope for it. The withdrawn envelope stays, with its delivery attempts, marked
``withdrawn_at``; so a transfer may now have several envelopes, of which one at most is not
withdrawn (a partial unique index in place of the unique ``event_id``).

SQLite cannot drop a unique constraint in place: ``envelopes`` is rebuilt, and with it
``delivery_attempts``, whose rows refer to it (a table with rows referring to it cannot be
dropped while foreign keys are enforced, as they are in the transaction that migrates). On a
large SQLite store, run ``caf-relay db upgrade`` while the workers are stopped. PostgreSQL
changes the constraint in place.

Downgrading is refused while any envelope is withdrawn: the schema before it holds one envelope
a transfer.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 09:00:00
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LIVE_ENVELOPE = "uq_envelopes_live_event_id"
NOT_WITHDRAWN = "withdrawn_at IS NULL"
# How SQLite's unnamed unique constraint on envelopes.event_id is named when reflected.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
POSTGRESQL_UNIQUE = "envelopes_event_id_key"  # PostgreSQL's own name for it (migration 0001)


def upgrade() -> None:
    withdrawn_at = sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("envelopes", withdrawn_at)
        op.drop_constraint(POSTGRESQL_UNIQUE, "envelopes", type_="unique")
        op.create_index(
            LIVE_ENVELOPE,
            "envelopes",
            ["event_id"],
            unique=True,
            postgresql_where=sa.text(NOT_WITHDRAWN),
        )
        return
    rebuilt = op.batch_alter_table("envelopes", naming_convention=NAMING)
    with _attempts_set_aside(), rebuilt as batch_op:
        batch_op.add_column(withdrawn_at)
        batch_op.drop_constraint("uq_envelopes_event_id", type_="unique")
        batch_op.create_index(
            LIVE_ENVELOPE, ["event_id"], unique=True, sqlite_where=sa.text(NOT_WITHDRAWN)
        )


def downgrade() -> None:
    withdrawn = op.get_bind().scalar(
        sa.text(f"SELECT count(*) FROM envelopes WHERE NOT ({NOT_WITHDRAWN})")
    )
    if withdrawn:
        raise RuntimeError(
            f"{withdrawn} envelopes are withdrawn; the schema before 0008 holds one a transfer."
        )
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(LIVE_ENVELOPE, table_name="envelopes")
        op.create_unique_constraint(POSTGRESQL_UNIQUE, "envelopes", ["event_id"])
        op.drop_column("envelopes", "withdrawn_at")
        return
    with _attempts_set_aside(), op.batch_alter_table("envelopes") as batch_op:
        batch_op.drop_index(LIVE_ENVELOPE)
        batch_op.create_unique_constraint("uq_envelopes_event_id", ["event_id"])
        batch_op.drop_column("withdrawn_at")


@contextmanager
def _attempts_set_aside() -> Iterator[None]:
    """On SQLite: ``delivery_attempts`` kept in a temporary table while ``envelopes`` is
    rebuilt, then created again as it was (migration 0001) and filled back."""
    op.execute("CREATE TEMPORARY TABLE held_attempts AS SELECT * FROM delivery_attempts")
    op.drop_index("ix_delivery_attempts_envelope_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    yield
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
        sa.ForeignKeyConstraint(["envelope_id"], ["envelopes.envelope_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_delivery_attempts_envelope_id", "delivery_attempts", ["envelope_id"], unique=False
    )
    op.execute("INSERT INTO delivery_attempts SELECT * FROM held_attempts")
    op.execute("DROP TABLE held_attempts")
