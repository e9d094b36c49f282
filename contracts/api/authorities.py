"""Authorities, their receipt keys and broker publishers, and their delivery adapters.

Adapter secrets go in and never come out: ``secrets`` is write-only in a request, and a view
lists only the names of the secrets that are set.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.common import ORG_CODE_PATTERN, Pattern, one_of, org_code, short_text

TIMESTAMP = {"format": "date-time"}

ORGANISATION_KINDS = (
    "local_authority",
    "health",
    "police",
    "school",
    "probation",
    "voluntary",
    "other",
)

# RabbitMQ user names as an operator would write them; nothing that needs quoting anywhere.
BROKER_USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"

JWKS = fields.Dict(
    allow_none=True,
    metadata={
        "description": "Public keys (a JWKS) the organisation signs its delivery receipts with;"
        " private or symmetric keys are refused."
    },
)


class NewAuthoritySchema(Schema):
    code = fields.String(
        required=True,
        validate=Pattern(ORG_CODE_PATTERN, error="Must be 3 to 16 capital letters and digits."),
        metadata={"description": "An ONS GSS code, or a code the admin assigns, e.g. RQX or MPS."},
    )
    name = short_text(required=True)
    kind = one_of(ORGANISATION_KINDS, required=True)
    jwks = JWKS


class AuthorityEditSchema(Schema):
    name = short_text()
    kind = one_of(ORGANISATION_KINDS)
    jwks = JWKS

    @validates_schema
    def changes_something(self, data, **kwargs) -> None:
        if not data:
            raise ValidationError("Give at least one of name, kind, jwks.")


class AuthoritySummarySchema(Schema):
    code = org_code(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    adapter_type = fields.String(required=True, allow_none=True)


class AuthorityViewSchema(AuthoritySummarySchema):
    jwks = fields.Dict(required=True, allow_none=True, metadata={"description": "Receipt keys."})
    publishers = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "RabbitMQ users that publish events from this authority."},
    )
    adapter_configured = fields.Boolean(required=True)


class AdapterConfigSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "An installed adapter type: https, amqp, directory, ..."},
    )
    settings = fields.Dict(load_default=dict, metadata={"description": "As the type defines."})
    secrets = fields.Dict(
        load_default=dict,
        load_only=True,
        metadata={"description": "Tokens, passwords: stored encrypted, never shown again."},
    )
    retry = fields.Dict(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Overrides of the retry policy: max_attempts, max_age_seconds,"
            " base_delay_seconds, max_delay_seconds."
        },
    )


class AdapterViewSchema(Schema):
    authority = org_code(required=True)
    type = fields.String(required=True)
    settings = fields.Dict(required=True)
    retry = fields.Dict(required=True, allow_none=True)
    secrets = fields.List(
        fields.String(), required=True, metadata={"description": "Names of the secrets set."}
    )
    secrets_readable = fields.Boolean(
        required=True,
        metadata={"description": "False if none of the configured keys decrypts the secrets."},
    )
    updated_at = fields.String(required=True, metadata=TIMESTAMP)


class AdapterTestSchema(Schema):
    authority = org_code(required=True)
    adapter_type = fields.String(required=True)
    test_id = fields.String(
        required=True, metadata={"description": "The test envelope's id, as the recipient saw it."}
    )
    delivered = fields.Boolean(required=True)
    retryable = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={
            "description": "For a failure: whether a transfer's delivery would be retried"
            " (an unusable configuration is, for an admin to mend)."
        },
    )
    detail = fields.String(required=True)
    duration_ms = fields.Integer(required=True)
    receipt = fields.Dict(
        required=True,
        allow_none=True,
        metadata={"description": "A signed receipt's check against the authority's keys."},
    )
