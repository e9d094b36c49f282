"""The CAF case carried by a transfer event.

Each top-level key is one data category (see ``contracts.vocabulary.DATA_CATEGORIES``), so the
case can be minimised by keeping or dropping whole sections. The three assessment domains follow
the CAF form: development of the child; parents and carers; family and environment.
"""

from marshmallow import Schema, fields, validate

from contracts.common import (
    MAX_LIST,
    Pattern,
    StrictBoolean,
    StrictDate,
    StrictFloat,
    long_text,
    short_text,
)


class AddressSchema(Schema):
    lines = fields.List(short_text(), required=True, validate=validate.Length(min=1, max=6))
    postcode = fields.String(required=True, validate=validate.Length(min=2, max=10))


class ChildIdentitySchema(Schema):
    given_name = short_text(required=True)
    family_name = short_text(required=True)
    date_of_birth = StrictDate(required=True)
    sex = fields.String(validate=validate.OneOf(["female", "male", "not_known", "not_stated"]))
    nhs_number = fields.String(validate=Pattern(r"^[0-9]{10}$"))
    unique_pupil_number = fields.String(validate=Pattern(r"^[A-Z][0-9]{11}[0-9A-Z]$"))


class ChildContactSchema(Schema):
    address = fields.Nested(AddressSchema, required=True)
    phone = short_text()
    email = short_text()


class FamilyMemberSchema(Schema):
    name = short_text(required=True)
    relationship = short_text(required=True)
    parental_responsibility = StrictBoolean(required=True)
    lives_with_child = StrictBoolean(required=True)
    contact = short_text()


class DevelopmentOfChildSchema(Schema):
    health = long_text()
    emotional_and_behavioural_development = long_text()
    identity = long_text()
    family_and_social_relationships = long_text()
    self_care_skills = long_text()
    learning = long_text()


class ParentsAndCarersSchema(Schema):
    basic_care = long_text()
    ensuring_safety = long_text()
    emotional_warmth = long_text()
    stimulation = long_text()
    guidance_and_boundaries = long_text()
    stability = long_text()


class FamilyAndEnvironmentSchema(Schema):
    family_history_and_functioning = long_text()
    wider_family = long_text()
    housing = long_text()
    employment = long_text()
    income = long_text()
    social_integration = long_text()
    community_resources = long_text()


class EducationSchema(Schema):
    school_name = short_text(required=True)
    school_urn = fields.String(validate=Pattern(r"^[0-9]{6}$"))
    attendance_percent = StrictFloat(validate=validate.Range(min=0, max=100))
    special_educational_needs = short_text()
    notes = long_text()


class PlanActionSchema(Schema):
    action = long_text(required=True)
    by_whom = short_text(required=True)
    by_when = StrictDate()


class PlanSchema(Schema):
    actions = fields.List(
        fields.Nested(PlanActionSchema), required=True, validate=validate.Length(max=MAX_LIST)
    )
    review_date = StrictDate()


class LeadProfessionalSchema(Schema):
    name = short_text(required=True)
    role = short_text(required=True)
    organisation = short_text(required=True)
    phone = short_text()
    email = short_text()


class CafCaseSchema(Schema):
    """Every section is optional here; the event requires ``child_identity``."""

    child_identity = fields.Nested(ChildIdentitySchema)
    child_contact = fields.Nested(ChildContactSchema)
    family_members = fields.List(
        fields.Nested(FamilyMemberSchema), validate=validate.Length(max=MAX_LIST)
    )
    development_of_child = fields.Nested(DevelopmentOfChildSchema)
    parents_and_carers = fields.Nested(ParentsAndCarersSchema)
    family_and_environment = fields.Nested(FamilyAndEnvironmentSchema)
    education = fields.Nested(EducationSchema)
    plan = fields.Nested(PlanSchema)
    lead_professional = fields.Nested(LeadProfessionalSchema)
