"""The case-transfer event: a CloudEvents 1.0 envelope in structured JSON mode.

``id`` is the idempotency key, ``source`` the publishing case system, ``subject`` the CAF case
reference; ``dataschema`` names the version of ``data``'s shape.
"""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.case import CafCaseSchema
from contracts.common import StrictAwareDateTime, one_of, org_code, short_text
from contracts.judgement import JudgementSchema
from contracts.vocabulary import EVENT_DATASCHEMA, EVENT_TYPE, PURPOSES, SHARING_MODES


class SharingSchema(Schema):
    mode = one_of(SHARING_MODES, required=True)
    purpose = one_of(PURPOSES, required=True)
    judgement = fields.Nested(JudgementSchema)


class CaseTransferDataSchema(Schema):
    from_authority = org_code(required=True)
    to_authority = org_code(required=True)
    sharing = fields.Nested(SharingSchema, required=True)
    case = fields.Nested(CafCaseSchema, required=True)

    @validates_schema
    def names_two_authorities(self, data, **kwargs):
        if data.get("from_authority") == data.get("to_authority"):
            raise ValidationError(
                "to_authority must differ from from_authority.", field_name="to_authority"
            )


class RequestedCaseTransferDataSchema(CaseTransferDataSchema):
    """A request must name the child; minimisation may later withhold the name."""

    @validates_schema
    def names_the_child(self, data, **kwargs):
        if "child_identity" not in data.get("case", {}):
            raise ValidationError(
                {"child_identity": ["A transfer names the child."]}, field_name="case"
            )


class CaseTransferEventSchema(Schema):
    specversion = fields.String(required=True, validate=validate.Equal("1.0"))
    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    source = fields.String(required=True, validate=validate.Length(min=1, max=512))
    type = fields.String(required=True, validate=validate.Equal(EVENT_TYPE))
    subject = short_text(required=True)
    time = StrictAwareDateTime(required=True)
    datacontenttype = fields.String(validate=validate.Equal("application/json"))
    dataschema = fields.String(required=True, validate=validate.Equal(EVENT_DATASCHEMA))
    data = fields.Nested(RequestedCaseTransferDataSchema, required=True)


class ForwardedCaseTransferEventSchema(CaseTransferEventSchema):
    """The event as a receiver gets it: only the case sections the basis permits remain."""

    data = fields.Nested(CaseTransferDataSchema, required=True)
