"""ISP confirmations: a signature binds its party once that party's own admin stands behind it.

Before this, an admin of one party could record an ISP naming another party's signatory, and
the relay took the signature as given. Now a signature counts for a party when it was recorded,
or later confirmed, by an admin who may act for that party (its own admin, or a global admin).
The ISPs already recorded were in force under the old rule, and the register does not say who
wrote their signatures down; their signatures are taken as confirmed when they were recorded,
so that upgrading changes no transfer's basis, with no one named as having confirmed them
(``confirmed_by`` SQL NULL, shown as ``"by": null`` by ``caf-relay isp show ID --json`` and
``GET /api/v1/isps/ID``): the ones to review with the parties they name.

Downgrading drops the confirmations; upgrading again takes every signature as confirmed, those
still awaiting their party's admin included.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from contracts.reference import expand_parties

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BUMP = "UPDATE reference_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    confirmations = op.create_table(
        "isp_confirmations",
        sa.Column("isp_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(length=16), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "confirmed_by",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["isp_id", "version"],
            ["isps.isp_id", "isps.version"],
            name="fk_isp_confirmations_isp",
        ),
        sa.PrimaryKeyConstraint("isp_id", "version", "party"),
    )
    # Intake keeps the ISPs in memory until this counter moves (migration 0003).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER isp_confirmations_reference_changed"
            " AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON isp_confirmations"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_reference_version()"
        )
    else:
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER isp_confirmations_reference_{change.lower()}"
                f" AFTER {change} ON isp_confirmations BEGIN {BUMP}; END"
            )
    isps = sa.table(
        "isps",
        sa.column("isp_id", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("document", sa.JSON()),
        sa.column("recorded_at", sa.DateTime(timezone=True)),
    )
    rows = op.get_bind().execute(
        sa.select(isps.c.isp_id, isps.c.version, isps.c.document, isps.c.recorded_at)
    )
    existing = [
        {
            "isp_id": isp_id,
            "version": version,
            "party": party,
            "confirmed_at": recorded_at,
        }
        for isp_id, version, document, recorded_at in rows
        for party in expand_parties([s["party"] for s in document["signatories"]])
    ]
    if existing:
        op.bulk_insert(confirmations, existing)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER isp_confirmations_reference_changed ON isp_confirmations")
    else:
        for change in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER isp_confirmations_reference_{change}")
    op.drop_table("isp_confirmations")
