"""Token expiry: each API token may carry the time it stops working.

The column is nullable, and a token made before it is left with none, which means it never
expires: an upgrade locks out no case system or person. The README says how to find such
tokens and replace them. Adding a nullable column rewrites nothing, on SQLite or PostgreSQL.

Downgrading drops the column, and with it every token's expiry: the code before it lets a token
work until it is revoked. Revoke the tokens that should have expired after downgrading.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # On SQLite, batch mode rebuilds the table where ALTER TABLE ... DROP COLUMN falls short.
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_column("expires_at")
