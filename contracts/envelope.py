"""The envelope: what the receiving authority gets, as the payload of a JWS.

It names its basis (an ISP reference, or the full judgement record), the data categories shared
and withheld, and carries the minimised event, so the receiver can both act on it and show an
auditor why it was lawful to receive.
"""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.common import Pattern, one_of, org_code, short_text, unique_list
from contracts.event import ForwardedCaseTransferEventSchema
from contracts.isp import ISP_ID_PATTERN
from contracts.judgement import JudgementSchema
from contracts.vocabulary import BASIS_KINDS, DATA_CATEGORIES, PURPOSES

ENVELOPE_JWS_TYP = "caf-envelope+jws"


class OrganisationSchema(Schema):
    code = org_code(required=True)
    name = short_text(required=True)


class IspReferenceSchema(Schema):
    id = fields.String(required=True, validate=Pattern(ISP_ID_PATTERN))
    version = fields.Integer(required=True, strict=True)
    title = short_text(required=True)
    document_sha256 = fields.String(required=True, validate=Pattern(r"^[0-9a-f]{64}$"))


class BasisSchema(Schema):
    kind = one_of(BASIS_KINDS, required=True)
    isp = fields.Nested(IspReferenceSchema)
    judgement = fields.Nested(JudgementSchema)

    @validates_schema
    def carries_its_kind(self, data, **kwargs) -> None:
        """The basis holds exactly the record its kind names: an ISP reference or a judgement."""
        kind = data.get("kind")
        for other in BASIS_KINDS:
            if other == kind and other not in data:
                raise ValidationError(f"A basis of kind {kind} carries its {kind}.", other)
            if other != kind and other in data:
                raise ValidationError(f"A basis of kind {kind} carries no {other}.", other)


class DataCategoriesSchema(Schema):
    shared = unique_list(one_of(DATA_CATEGORIES), required=True)
    withheld = unique_list(one_of(DATA_CATEGORIES), required=True)


class EnvelopeSchema(Schema):
    envelope_id = fields.UUID(required=True)
    event_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    issued_at = fields.AwareDateTime(required=True)
    case_reference = short_text(required=True)
    purpose = one_of(PURPOSES, required=True)
    from_ = fields.Nested(OrganisationSchema, required=True, data_key="from")
    to = fields.Nested(OrganisationSchema, required=True)
    basis = fields.Nested(BasisSchema, required=True)
    data_categories = fields.Nested(DataCategoriesSchema, required=True)
    event = fields.Nested(ForwardedCaseTransferEventSchema, required=True)
