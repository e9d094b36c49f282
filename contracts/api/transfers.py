"""A transfer as the API shows it: state, basis, categories, deliveries, timeline; no case data."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, fields, validate

from contracts.common import MAX_PAGE, AwareDateTimeAnyZ, in_utc_range
from contracts.vocabulary import TransferState

TIMESTAMP = {"format": "date-time"}
TRANSFER_STATES = tuple(state.value for state in TransferState)


class EnvelopeSummarySchema(Schema):
    envelope_id = fields.String(required=True)
    kid = fields.String(required=True)
    sha256 = fields.String(required=True)
    issued_at = fields.String(required=True, metadata=TIMESTAMP)


class DeliveryAttemptSchema(Schema):
    attempted_at = fields.String(required=True, metadata=TIMESTAMP)
    adapter_type = fields.String(allow_none=True)
    succeeded = fields.Boolean(required=True)
    retryable = fields.Boolean(required=True)
    detail = fields.String(required=True)
    duration_ms = fields.Integer(required=True)
    receipt = fields.String(allow_none=True)


class OutboxStateSchema(Schema):
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.String(required=True, metadata=TIMESTAMP)
    enqueued_at = fields.String(required=True, metadata=TIMESTAMP)


class TimelineEntrySchema(Schema):
    at = fields.String(required=True, metadata=TIMESTAMP)
    action = fields.String(required=True)
    detail = fields.Dict(required=True)


class _TransferSchema(Schema):
    """What every view of a transfer shows first: whose, between whom, and why."""

    event_id = fields.String(required=True)
    case_reference = fields.String(required=True)
    from_authority = fields.String(required=True)
    to_authority = fields.String(required=True)
    mode = fields.String(required=True)
    purpose = fields.String(required=True)
    received_at = fields.String(required=True, metadata=TIMESTAMP)
    updated_at = fields.String(required=True, metadata=TIMESTAMP)


class TransferViewSchema(_TransferSchema):
    state = fields.String(
        required=True,
        metadata={
            "enum": list(TRANSFER_STATES),
            "description": "awaiting_judgement: parked until a practitioner records a judgement.",
        },
    )
    decision = fields.Dict(
        required=True,
        metadata={"description": "The basis decided, the ISPs considered and why, the reason."},
    )
    envelope = fields.Nested(EnvelopeSummarySchema, allow_none=True, required=True)
    deliveries = fields.List(fields.Nested(DeliveryAttemptSchema), required=True)
    outbox = fields.Nested(OutboxStateSchema, allow_none=True, required=True)
    timeline = fields.List(fields.Nested(TimelineEntrySchema), required=True)
    duplicate = fields.Boolean(metadata={"description": "Only on POST /events: seen before."})


class TransferListQuerySchema(Schema):
    state = fields.String(
        validate=validate.OneOf(TRANSFER_STATES), metadata={"description": "Only in this state."}
    )
    authority = fields.String(
        metadata={"description": "Only transfers from or to this authority (a GSS code)."}
    )
    since = AwareDateTimeAnyZ(
        default_timezone=UTC,
        validate=in_utc_range,
        metadata={"description": "Received at or after (UTC if no zone)."},
    )
    until = AwareDateTimeAnyZ(
        default_timezone=UTC,
        validate=in_utc_range,
        metadata={"description": "Received before (UTC if no zone)."},
    )
    after = fields.String(
        metadata={"description": "The next_after of the previous page: the page after it."}
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Transfers per page, at most {MAX_PAGE}."},
    )


class TransferSummarySchema(_TransferSchema):
    state = fields.String(required=True, metadata={"enum": list(TRANSFER_STATES)})
    basis = fields.String(
        required=True,
        metadata={"enum": ["isp", "judgement", "none"], "description": "What it was decided on."},
    )
    reason = fields.String(required=True, metadata={"description": "Why it is in its state."})


class TransferPageSchema(Schema):
    transfers = fields.List(fields.Nested(TransferSummarySchema), required=True)
    next_after = fields.String(
        allow_none=True, required=True, metadata={"description": "None on the last page."}
    )
    next = fields.String(
        allow_none=True, required=True, metadata={"description": "The next page's URL, if any."}
    )
