"""The relational schema. Alembic migrations in ``migrations/`` create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonDocument = sa.JSON().with_variant(JSONB(), "postgresql")

# The id of a table that grows with every event: 64-bit, so it cannot run out (migration 0004).
# SQLite hands out ids only for a column declared INTEGER, which is already its 64-bit rowid.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The longest worker name a claim is stored under (``CAF_RELAY_WORKER_NAME``).
WORKER_NAME_LENGTH = 128


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
    # Public keys the authority signs delivery receipts with (a JWKS); none until registered.
    jwks: Mapped[dict[str, Any] | None]


class AdapterConfig(Base):
    __tablename__ = "adapter_configs"
    authority_code: Mapped[str] = mapped_column(sa.ForeignKey("authorities.code"), primary_key=True)
    adapter_type: Mapped[str] = mapped_column(sa.String(64))
    settings: Mapped[dict[str, Any]]
    secrets_sealed: Mapped[str] = mapped_column(sa.Text)
    # Overrides of the default retry policy for this authority's deliveries (see config.py).
    retry: Mapped[dict[str, Any] | None]
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


class IspConfirmation(Base):
    """A party's own admin (or a global admin) stands behind its signature on one ISP version;
    recorded with the version when its recorder may act for the party, or later."""

    __tablename__ = "isp_confirmations"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["isp_id", "version"], ["isps.isp_id", "isps.version"], name="fk_isp_confirmations_isp"
        ),
    )
    isp_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    party: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    confirmed_at: Mapped[datetime]
    # Who confirmed (``Principal.describe()``); NULL for a signature taken as confirmed on
    # upgrading to migration 0005, recorded before confirmations existed.
    confirmed_by: Mapped[dict[str, Any] | None]


class Transfer(Base):
    __tablename__ = "transfers"
    # Listings page oldest received first (``service.store.transfers``, migration 0007).
    __table_args__ = (sa.Index("ix_transfers_received_at", "received_at", "event_id"),)
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
    # Set when retention removed the case data from ``event`` and the envelope's JWS.
    payload_purged_at: Mapped[datetime | None]


class Envelope(Base):
    """A transfer's signed envelope. One whose ISP was suspended before it was delivered is
    withdrawn (``withdrawn_at``, its JWS gone): never sent, kept with its delivery attempts; a
    judgement to share then signs another. So a transfer has one envelope at most that is not
    withdrawn (migration 0008)."""

    __tablename__ = "envelopes"
    __table_args__ = (
        sa.Index(
            "uq_envelopes_live_event_id",
            "event_id",
            unique=True,
            sqlite_where=sa.text("withdrawn_at IS NULL"),
            postgresql_where=sa.text("withdrawn_at IS NULL"),
        ),
    )
    envelope_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("transfers.event_id"))
    kid: Mapped[str] = mapped_column(sa.String(64))
    jws: Mapped[str | None] = mapped_column(sa.Text)  # None once retention purged it
    sha256: Mapped[str] = mapped_column(sa.String(64))
    issued_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    envelope_id: Mapped[str] = mapped_column(sa.ForeignKey("envelopes.envelope_id"), index=True)
    attempted_at: Mapped[datetime]
    adapter_type: Mapped[str | None] = mapped_column(sa.String(64))
    succeeded: Mapped[bool]
    retryable: Mapped[bool]
    detail: Mapped[str] = mapped_column(sa.Text)
    duration_ms: Mapped[int]
    receipt: Mapped[str | None] = mapped_column(sa.Text)


class OutboxItem(Base):
    """A signed envelope still to be delivered; the row goes once it is delivered or failed.

    ``id`` is the order of receipt: an item waits while an earlier one for the same recipient
    and case is still here, so a case's transfers reach a recipient in order. A delivery worker
    claims an item until ``claimed_until``; after that another may take it over.
    """

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_stream", "to_authority", "case_reference", "id"),)
    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("transfers.event_id"), unique=True)
    to_authority: Mapped[str] = mapped_column(sa.String(16))
    case_reference: Mapped[str] = mapped_column(sa.String(200))
    enqueued_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int]
    claimed_by: Mapped[str | None] = mapped_column(sa.String(WORKER_NAME_LENGTH))
    claimed_until: Mapped[datetime | None]


class AuditRecord(Base):
    """What happened and why; never the child's data, so it can be kept after payloads go.

    ``seq``, ``prev_hash`` and ``hash`` chain the records (``service.domain.audit_chain``). Rows
    are written only by ``service.store.audit_log.append_audit``, which chains them as the
    transaction of the change they record commits; an ``AuditRecord`` added to a session
    directly would bypass the chain.
    """

    __tablename__ = "audit_records"
    # A search by action reads that action's records in seq order (migration 0011).
    __table_args__ = (sa.Index("ix_audit_records_action", "action", "seq"),)
    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, index=True, unique=True)
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    event_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditChainHead(Base):
    """The newest record's seq and hash: one row, locked by every append to serialise them.

    It also keeps how far ``recorded_at`` has run backwards along ``seq`` (a record's time is
    taken when it is appended, its seq when its transaction commits, and clocks of several
    hosts differ): the latest ``recorded_at`` so far and the most any record fell behind the
    latest before it. A search from a time finds its first record from them (migration 0010).
    """

    __tablename__ = "audit_chain_head"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    hash: Mapped[str] = mapped_column(sa.String(64))
    latest_recorded_at: Mapped[datetime | None]  # None while the log is empty
    max_lag_us: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")  # microseconds


class ReferenceVersion(Base):
    """One row whose version moves on with every change to the authorities, ISPs, their
    confirmations and the broker publishers (database triggers, migrations 0003 and 0005), so
    that intake may keep them in memory."""

    __tablename__ = "reference_version"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(sa.BigInteger)


class AuditCheckpoint(Base):
    """A signed statement (JWS) that the chain's record ``seq`` has ``hash``."""

    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(sa.String(64))
    signed_at: Mapped[datetime]
    kid: Mapped[str] = mapped_column(sa.String(64))
    jws: Mapped[str] = mapped_column(sa.Text)


class AuditSubject(Base):
    """The audit's search index of transfers, derived from their chained audit records."""

    __tablename__ = "audit_subjects"
    event_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    case_reference: Mapped[str] = mapped_column(sa.String(200), index=True)
    from_authority: Mapped[str] = mapped_column(sa.String(16), index=True)
    to_authority: Mapped[str] = mapped_column(sa.String(16), index=True)
    basis_kind: Mapped[str | None] = mapped_column(sa.String(16), index=True)


class AuditChildKey(Base):
    """A keyed hash (HMAC) of one of a transfer's child identifiers; never the identifier."""

    __tablename__ = "audit_child_keys"
    child_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)


class DeadLetter(Base):
    """Rejected input on the embedded queue, kept with its reason as caf.dead keeps it on AMQP."""

    __tablename__ = "dead_letters"
    # An operator finds a refusal's letter by the event id its audit record names (0012).
    __table_args__ = (sa.Index("ix_dead_letters_event_id", "event_id"),)
    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    received_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(sa.Text)
    # None: not read (not JSON, too big, no usable id), or kept before 0012.
    event_id: Mapped[str | None] = mapped_column(sa.String(128))
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)


class ApiToken(Base):
    """An API token: only its SHA-256 digest is kept (``service.access``)."""

    __tablename__ = "api_tokens"
    __table_args__ = (sa.UniqueConstraint("digest", name="uq_api_tokens_digest"),)
    token_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    authority_code: Mapped[str | None] = mapped_column(sa.ForeignKey("authorities.code"))
    digest: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # every token's, since migration 0013
    revoked_at: Mapped[datetime | None]


class BrokerPublisher(Base):
    """A RabbitMQ user (the broker-checked ``user_id`` property) that publishes for an authority."""

    __tablename__ = "broker_publishers"
    broker_user: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    authority_code: Mapped[str] = mapped_column(sa.ForeignKey("authorities.code"))
