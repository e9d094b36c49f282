"""The Information Sharing Protocol: a signed agreement for routine sharing between parties."""

import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.common import (
    ORG_CODE_PATTERN,
    LawfulBasisSchema,
    Pattern,
    StrictDate,
    long_text,
    one_of,
    require_special_category_basis,
    short_text,
    unique_list,
)
from contracts.reference import PARTY_GROUPS, expand_parties
from contracts.vocabulary import DATA_CATEGORIES, EVENT_TYPE, ISP_STATUSES, PURPOSES

ORG_CODE = re.compile(ORG_CODE_PATTERN)
ISP_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}$"


def _party(value: str) -> None:
    if value not in PARTY_GROUPS and not ORG_CODE.fullmatch(value):
        groups = ", ".join(sorted(PARTY_GROUPS))
        raise ValidationError(f"Not an organisation code or a known group ({groups}).")


class SignatorySchema(Schema):
    """Who signed for a party (an organisation code, or a group signing for its members)."""

    party = fields.String(required=True, validate=_party)
    name = short_text(required=True)
    role = short_text(required=True)
    signed_on = StrictDate(required=True)


class RetentionSchema(Schema):
    period_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    disposal = long_text()


class DocumentSchema(Schema):
    reference = fields.String(required=True, validate=validate.Length(min=1, max=512))
    sha256 = fields.String(required=True, validate=Pattern(r"^[0-9a-f]{64}$"))


class IspSchema(Schema):
    id = fields.String(required=True, validate=Pattern(ISP_ID_PATTERN))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    title = short_text(required=True)
    status = one_of(ISP_STATUSES, required=True)
    parties = unique_list(fields.String(validate=_party), min_items=1, required=True)
    flows = unique_list(one_of([EVENT_TYPE]), min_items=1, required=True)
    purposes = unique_list(one_of(PURPOSES), min_items=1, required=True)
    data_categories = unique_list(one_of(DATA_CATEGORIES), min_items=1, required=True)
    lawful_basis = fields.Nested(LawfulBasisSchema, required=True)
    effective_from = StrictDate(required=True)
    review_by = StrictDate(required=True)
    expires_on = StrictDate(allow_none=True, load_default=None)
    retention = fields.Nested(RetentionSchema, required=True)
    signatories = fields.List(
        fields.Nested(SignatorySchema), required=True, validate=validate.Length(min=1, max=100)
    )
    document = fields.Nested(DocumentSchema, required=True)

    @validates_schema
    def coherent(self, data, **kwargs):
        if "lawful_basis" in data:
            require_special_category_basis(data.get("data_categories", []), data["lawful_basis"])
        start, end = data.get("effective_from"), data.get("expires_on")
        if start and end and end < start:
            raise ValidationError("expires_on is before effective_from.", field_name="expires_on")
        parties = data.get("parties", [])
        if len(parties) == 1 and parties[0] not in PARTY_GROUPS:
            raise ValidationError(
                "An ISP is an agreement between two or more parties.", field_name="parties"
            )
        # A signature for no party binds no one: a mistyped code would leave the ISP listed as
        # active, with nothing unconfirmed, yet never applying (finding not_signed).
        members = expand_parties(parties)
        strays = {
            index: {"party": [f"{signatory['party']} is not a party to this ISP."]}
            for index, signatory in enumerate(data.get("signatories", []))
            if members and not expand_parties([signatory["party"]]) & members
        }
        if strays:
            raise ValidationError(strays, field_name="signatories")
