"""The practitioner-judgement record: the basis for sharing where no ISP applies.

It answers golden rule 7 of the national information-sharing guidance: who decided, when, what,
with whom, for what purpose, with what consent and on what lawful basis, and why; a decision not
to share is recorded just the same.
"""

from marshmallow import Schema, ValidationError, fields, validates_schema

from contracts.common import (
    LawfulBasisSchema,
    StrictAwareDateTime,
    long_text,
    one_of,
    org_code,
    require_special_category_basis,
    short_text,
    unique_list,
)
from contracts.vocabulary import CONSENT_STATUSES, DATA_CATEGORIES, DECISIONS, PURPOSES


class PractitionerSchema(Schema):
    name = short_text(required=True)
    role = short_text(required=True)
    organisation = org_code(required=True)
    contact = short_text(required=True)


class ReasonsSchema(Schema):
    necessity = long_text(required=True)
    proportionality = long_text(required=True)


class ConsentSchema(Schema):
    status = one_of(CONSENT_STATUSES, required=True)
    explanation = long_text()

    @validates_schema
    def explained_unless_obtained(self, data, **kwargs):
        if data.get("status") != "obtained" and not data.get("explanation"):
            raise ValidationError(
                "explanation is required unless consent was obtained.", field_name="explanation"
            )


class JudgementSchema(Schema):
    practitioner = fields.Nested(PractitionerSchema, required=True)
    decided_at = StrictAwareDateTime(
        required=True,
        metadata={
            "description": "When the practitioner decided. caf-relay also refuses a moment more "
            "than 5 minutes later than the judgement reached it: a decision is made before it "
            "is sent."
        },
    )
    decision = one_of(DECISIONS, required=True)
    purpose = one_of(PURPOSES, required=True)
    reasons = fields.Nested(ReasonsSchema, required=True)
    consent = fields.Nested(ConsentSchema, required=True)
    lawful_basis = fields.Nested(LawfulBasisSchema, required=True)
    data_categories = unique_list(one_of(DATA_CATEGORIES), required=True)
    recipients = unique_list(org_code(), min_items=1, required=True)

    @validates_schema
    def shares_something_lawfully(self, data, **kwargs):
        categories = data.get("data_categories", [])
        if data.get("decision") == "share":
            if not categories:
                raise ValidationError(
                    "A decision to share names at least one data category.",
                    field_name="data_categories",
                )
            require_special_category_basis(categories, data.get("lawful_basis"))
            require_consent_for_a_consent_basis(data.get("lawful_basis"), data.get("consent"))
            if (data.get("consent") or {}).get("status") == "refused":
                raise ValidationError(
                    "consent.status refused means the refusal is respected and nothing is "
                    "shared; a share despite a refusal is refused_overridden.",
                    field_name="consent",
                )


# The bases that rest on the child's or family's consent (UK GDPR Art. 6(1)(a), Art. 9(2)(a)).
CONSENT_BASES = {"article_6": "6(1)(a)", "article_9": "9(2)(a)"}


def require_consent_for_a_consent_basis(lawful_basis, consent) -> None:
    """A share resting on consent needs consent obtained: refused, or not sought, it cannot."""
    resting = [
        value for key, value in CONSENT_BASES.items() if (lawful_basis or {}).get(key) == value
    ]
    if resting and (consent or {}).get("status") != "obtained":
        raise ValidationError(
            f"lawful_basis {' and '.join(resting)} rests on consent, so consent.status must be "
            "obtained.",
            field_name="lawful_basis",
        )
