"""The one error shape every API response uses: RFC 9457 problem details."""

from __future__ import annotations

from marshmallow import Schema, fields


class ProblemSchema(Schema):
    status = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    title = fields.String(required=True, metadata={"description": "The status's phrase."})
    detail = fields.String(required=True, metadata={"description": "What went wrong, for people."})
    errors = fields.Dict(
        metadata={"description": "Field-level errors: field name to messages, nested as the body."}
    )
    rejection = fields.String(
        metadata={"description": "For a refused event: the reason code, as on caf.dead."}
    )
    error_id = fields.String(
        metadata={
            "description": "For an unexpected error (500): the id to quote when reporting it,"
            " which the relay's log line about it names too."
        }
    )
