"""The audit API's requests and answers: searches, the chain's verification, subject access.

A child is named only in a request body (``POST``), never in a URL: URLs are written to access
logs, proxies' logs and browser histories, where an NHS number must not end up. The filters are
read by ``service.audit.audit_query``, shared with the CLI, which says what a bad one is.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.api.transfers import TIMESTAMP
from contracts.common import MAX_PAGE

BASIS_KINDS = ("isp", "judgement", "none")
MOMENT = {"format": "date-time"}
MOMENT_TEXT = "ISO 8601 with a time zone, or a date (from midnight UTC)."


class AuditFiltersSchema(Schema):
    """Filters that all apply; none of them names a child."""

    case_reference = fields.String()
    event_id = fields.String(
        metadata={
            "description": "Every record made under this event id. A global admin's search "
            "finds an event's refusal (rejected, with the reason) too; an auditor's, only the "
            "records of its own authority's transfer with that id."
        }
    )
    authority = fields.String(
        metadata={
            "description": "A transfer's sending or receiving authority (GSS code). An "
            "auditor's searches are always of its own authority's transfers."
        }
    )
    basis = fields.String(metadata={"enum": list(BASIS_KINDS)})
    action = fields.String(
        metadata={
            "description": "Records of this action only. A global admin finds who read a "
            "child's record with child_record_read (and, in a POST search, the child)."
        }
    )
    since = fields.String(metadata={**MOMENT, "description": f"From this: {MOMENT_TEXT}"})
    until = fields.String(metadata={**MOMENT, "description": f"Before this: {MOMENT_TEXT}"})
    page_size = fields.Integer(
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Records per page: 50 unless given, at most {MAX_PAGE}."},
    )
    after = fields.Integer(metadata={"description": "The next_after of the previous page."})


class IdentifiedChildSchema(Schema):
    """One child, by an identifier only one child has: an NHS number or a UPN."""

    nhs_number = fields.String(metadata={"example": "9434765919"})
    unique_pupil_number = fields.String()


class ChildSchema(IdentifiedChildSchema):
    """One child, one way: an NHS number, a UPN, or names with the date of birth."""

    given_name = fields.String()
    family_name = fields.String()
    date_of_birth = fields.String(metadata={"format": "date"})


class AuditSearchSchema(AuditFiltersSchema, ChildSchema):
    """A search that may name a child, sent as a JSON body."""


class AuditRecordSchema(Schema):
    seq = fields.Integer(required=True)
    recorded_at = fields.String(required=True, metadata=TIMESTAMP)
    event_id = fields.String(required=True, allow_none=True)
    action = fields.String(required=True)
    detail = fields.Dict(required=True)
    hash = fields.String(required=True)


class AuditPageSchema(Schema):
    records = fields.List(fields.Nested(AuditRecordSchema), required=True)
    next_after = fields.Integer(
        required=True, allow_none=True, metadata={"description": "None on the last page."}
    )
    next = fields.String(
        allow_none=True,
        metadata={"description": "GET only: the next page's URL, or None on the last page."},
    )


class ChainHeadSchema(Schema):
    seq = fields.Integer(required=True)
    hash = fields.String(required=True)


class BadRecordSchema(Schema):
    seq = fields.Integer(required=True)
    damage = fields.String(required=True)
    reason = fields.String(required=True)


class CheckpointsCheckedSchema(Schema):
    checked = fields.Integer(required=True)
    errors = fields.List(fields.String(), required=True)


class JudgementsCheckedSchema(Schema):
    checked = fields.Integer(
        required=True,
        metadata={"description": "Judgements stored with transfers, held against their digests."},
    )
    not_checked = fields.Integer(
        required=True,
        metadata={"description": "Judgements recorded before the chain held their digests."},
    )
    errors = fields.List(fields.String(), required=True)


class IndexCheckedSchema(Schema):
    errors = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "Where the search index (a transfer's authorities, case, basis kind "
            "and child keys) differs from what its audit records say, by the seq of its "
            "received record."
        },
    )


class VerificationSchema(Schema):
    intact = fields.Boolean(required=True)
    records = fields.Integer(required=True)
    head = fields.Nested(ChainHeadSchema, required=True)
    first_bad_record = fields.Nested(BadRecordSchema, required=True, allow_none=True)
    checkpoints = fields.Nested(CheckpointsCheckedSchema, required=True)
    judgements = fields.Nested(JudgementsCheckedSchema, required=True)
    index = fields.Nested(IndexCheckedSchema, required=True)


class SubjectAccessSchema(Schema):
    generated_at = fields.String(required=True, metadata=TIMESTAMP)
    child = fields.Dict(required=True, metadata={"description": "The identifiers asked for."})
    transfers = fields.List(
        fields.Dict(),
        required=True,
        metadata={
            "description": "Each transfer of the child: parties, basis, categories shared and "
            "withheld, delivery, history. An auditor sees its own authority's only."
        },
    )
