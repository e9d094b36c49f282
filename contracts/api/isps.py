"""The ISP register as the API shows it; a request to create or amend is the ISP itself."""

from __future__ import annotations

from marshmallow import Schema, fields

from contracts.common import long_text, one_of, org_code
from contracts.vocabulary import EVENT_TYPE, ISP_STATUSES, PURPOSES, IspFinding

TIMESTAMP = {"format": "date-time"}
DAY = {"format": "date"}


class IspSummarySchema(Schema):
    isp_id = fields.String(required=True)
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(ISP_STATUSES)})
    parties = fields.List(fields.String(), required=True)
    effective_from = fields.String(required=True, metadata=DAY)
    expires_on = fields.String(required=True, allow_none=True, metadata=DAY)
    unconfirmed = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "Parties signed for whose own admins have not yet confirmed the "
            "signature: the version does not bind them, so their routine transfers under it "
            "need a practitioner judgement. POST .../versions/{version}/confirm to confirm."
        },
    )
    review_overdue = fields.Boolean(
        required=True,
        metadata={
            "description": "An active version in force past its review_by date (London "
            "calendar): it still applies, and asks its parties to review it."
        },
    )
    recorded_at = fields.String(required=True, metadata=TIMESTAMP)


class ConfirmationSchema(Schema):
    party = fields.String(required=True)
    confirmed_at = fields.String(required=True, metadata=TIMESTAMP)
    by = fields.Dict(
        required=True,
        allow_none=True,
        metadata={
            "description": "Who confirmed (name, role, authority, token id); null for a "
            "signature recorded before confirmations existed, taken as confirmed on upgrading."
        },
    )


class IspVersionSchema(IspSummarySchema):
    confirmations = fields.List(fields.Nested(ConfirmationSchema), required=True)
    document = fields.Dict(
        required=True,
        metadata={"description": "The version as recorded (contracts/published/isp.schema.json)."},
    )


class IspHistorySchema(Schema):
    isp_id = fields.String(required=True)
    current = fields.Nested(IspSummarySchema, required=True)
    versions = fields.List(fields.Nested(IspVersionSchema), required=True)


class ImportedIspSchema(IspSummarySchema):
    change = fields.String(required=True, metadata={"enum": ["created", "amended"]})


class SuspendSchema(Schema):
    reason = long_text(
        required=True, metadata={"description": "Why it is suspended; kept in the audit trail."}
    )


class ApplicableQuerySchema(Schema):
    from_authority = org_code(required=True)
    to_authority = org_code(required=True)
    flow = one_of([EVENT_TYPE], load_default=EVENT_TYPE)
    purpose = one_of(PURPOSES, required=True)
    on = fields.Date(metadata={"description": "The day to decide for; today if left out."})


class IspReferenceSchema(Schema):
    isp_id = fields.String(required=True)
    version = fields.Integer(required=True)


class IspConsideredSchema(IspReferenceSchema):
    title = fields.String(required=True)
    status = fields.String(required=True)
    finding = fields.String(
        required=True,
        metadata={
            "enum": [finding.value for finding in IspFinding],
            "description": "Why it does or does not apply, as a transfer's decision records it.",
        },
    )
    reason = fields.String(required=True)


class ApplicabilitySchema(Schema):
    from_authority = fields.String(required=True)
    to_authority = fields.String(required=True)
    flow = fields.String(required=True)
    purpose = fields.String(required=True)
    on = fields.String(required=True, metadata=DAY)
    basis = fields.Nested(
        IspReferenceSchema,
        required=True,
        allow_none=True,
        metadata={
            "description": "The ISP a routine transfer would be shared under, if any, its case "
            "carrying every category. A case carrying none of the categories it shares goes "
            "under the next applicable ISP that shares one, or waits for a judgement."
        },
    )
    reason = fields.String(required=True)
    considered = fields.List(fields.Nested(IspConsideredSchema), required=True)
