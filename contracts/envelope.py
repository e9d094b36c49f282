"""The envelope: what the receiving authority gets, as the payload of a JWS.

It names its basis (an ISP reference, or the full judgement record), the data categories shared
and withheld, and carries the minimised event, so the receiver can both act on it and show an
auditor why it was lawful to receive.
"""

from marshmallow import Schema, fields, validate

from contracts.common import Pattern, one_of, org_code, short_text, unique_list
from contracts.event import ForwardedCaseTransferEventSchema
from contracts.judgement import JudgementSchema
from contracts.vocabulary import BASIS_KINDS, DATA_CATEGORIES, PURPOSES

ENVELOPE_MEDIA_TYPE = "application/caf-envelope+json"
ENVELOPE_JWS_TYP = "caf-envelope+jws"


class OrganisationSchema(Schema):
    code = org_code(required=True)
    name = short_text(required=True)


class IspReferenceSchema(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True, strict=True)
    title = short_text(required=True)
    document_sha256 = fields.String(required=True, validate=Pattern(r"^[0-9a-f]{64}$"))


class BasisSchema(Schema):
    kind = one_of(BASIS_KINDS, required=True)
    isp = fields.Nested(IspReferenceSchema)
    judgement = fields.Nested(JudgementSchema)


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
