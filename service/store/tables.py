"""The relational schema. Alembic migrations in ``migrations/`` create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonDocument = sa.JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(sa.TypeDecorator):
    """Timestamps go in and come out as aware UTC, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("Naive datetimes are not stored; pass an aware UTC time.")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JsonDocument}


class Authority(Base):
    __tablename__ = "authorities"
    code: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32), default="local_authority")


class AdapterConfig(Base):
    __tablename__ = "adapter_configs"
    authority_code: Mapped[str] = mapped_column(sa.ForeignKey("authorities.code"), primary_key=True)
    adapter_type: Mapped[str] = mapped_column(sa.String(64))
    settings: Mapped[dict[str, Any]]
    secrets_sealed: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime]


class Isp(Base):
    __tablename__ = "isps"
    __table_args__ = (sa.UniqueConstraint("isp_id", "version", name="uq_isps_id_version"),)
    pk: Mapped[int] = mapped_column(primary_key=True)
    isp_id: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16))
    document: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime]


class Transfer(Base):
    __tablename__ = "transfers"
    event_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    case_reference: Mapped[str] = mapped_column(sa.String(200), index=True)
    from_authority: Mapped[str] = mapped_column(sa.ForeignKey("authorities.code"), index=True)
    to_authority: Mapped[str] = mapped_column(sa.ForeignKey("authorities.code"), index=True)
    mode: Mapped[str] = mapped_column(sa.String(16))
    purpose: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(24), index=True)
    decision: Mapped[dict[str, Any]]
    event: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Envelope(Base):
    __tablename__ = "envelopes"
    envelope_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("transfers.event_id"), unique=True)
    kid: Mapped[str] = mapped_column(sa.String(64))
    jws: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    issued_at: Mapped[datetime]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    envelope_id: Mapped[str] = mapped_column(sa.ForeignKey("envelopes.envelope_id"), index=True)
    attempted_at: Mapped[datetime]
    adapter_type: Mapped[str | None] = mapped_column(sa.String(64))
    succeeded: Mapped[bool]
    retryable: Mapped[bool]
    detail: Mapped[str] = mapped_column(sa.Text)
    duration_ms: Mapped[int]


class AuditRecord(Base):
    """What happened and why; never the child's data, so it can be kept after payloads go."""

    __tablename__ = "audit_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    recorded_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[dict[str, Any]]


class DeadLetter(Base):
    """Rejected input on the embedded queue, kept with its reason as caf.dead keeps it on AMQP."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(sa.Text)
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
