"""Tokens made before migration 0009, which had no expiry, now expire 90 days after this
upgrade, as every other token expires: ``caf-relay token list`` says when; give their holders
new ones before then.

Migration 0009 left such tokens working until revoked, so that upgrading locked no one out; but
a token with no end is what expiry is there to prevent (one in a forgotten script or on a
laptop), and a borough's security officer reads "every token expires" as meaning every token.
Ninety days from the upgrade is the lifetime a token made that day gets by default: it locks no
one out today, and gives each holder as long to fit a new token as any new token's holder has.
The 90 is written here, not taken from ``service.access``: a later change to the default must
not change what this migration did. A revoked token is given the same expiry; it stays revoked.
The column is then NOT NULL, so that no token can be without one again. On SQLite that rebuilds
the table, which holds a row a token.

Downgrading lets the column hold no expiry again but keeps every token's: the code before this
migration applies them as they are.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 02:00:00
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

DAYS_LEFT = 90


def upgrade() -> None:
    tokens = sa.table("api_tokens", sa.column("expires_at", sa.DateTime(timezone=True)))
    expires_at = datetime.now(UTC) + timedelta(days=DAYS_LEFT)
    op.execute(tokens.update().where(tokens.c.expires_at.is_(None)).values(expires_at=expires_at))
    _expiry_required(True)


def downgrade() -> None:
    _expiry_required(False)


def _expiry_required(required: bool) -> None:
    # On SQLite, batch mode rebuilds the table where ALTER TABLE ... ALTER COLUMN falls short.
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=not required
        )
