"""Access: hashed API tokens with roles, and the broker users that publish for an authority.

Downgrading drops every API token and broker publisher: no one can call the API, nor
publish for an authority, until they are set up again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("authority_code", sa.String(length=16), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["authority_code"], ["authorities.code"]),
        sa.PrimaryKeyConstraint("token_id"),
        sa.UniqueConstraint("digest", name="uq_api_tokens_digest"),
    )
    op.create_table(
        "broker_publishers",
        sa.Column("broker_user", sa.String(length=128), nullable=False),
        sa.Column("authority_code", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["authority_code"], ["authorities.code"]),
        sa.PrimaryKeyConstraint("broker_user"),
    )


def downgrade() -> None:
    op.drop_table("broker_publishers")
    op.drop_table("api_tokens")
