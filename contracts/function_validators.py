"""How the validators that are plain functions appear in a published schema.

The schema generator reads marshmallow's validator classes itself, not functions; this
attribute function says what each function means, for the JSON Schemas (``contracts.export``)
and the OpenAPI document the web app serves (``service.web``) alike.
"""

from __future__ import annotations

import inspect
from typing import Any

from marshmallow import fields

from contracts.common import ORG_CODE_PATTERN, UTC_RANGE_RULE, in_utc_range, no_repeats
from contracts.isp import _party
from contracts.reference import PARTY_GROUPS


def function_validators(self, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """The generator's attribute function for validators that are plain functions."""
    found: dict[str, Any] = {}
    for validator in field.validators:
        if validator is no_repeats:
            found["uniqueItems"] = True
        elif validator is _party:
            found["anyOf"] = [{"pattern": ORG_CODE_PATTERN}, {"enum": sorted(PARTY_GROUPS)}]
        elif validator is in_utc_range:  # no JSON Schema keyword bounds a date-time: say it
            described = kwargs["ret"].get("description")
            found["description"] = f"{described} {UTC_RANGE_RULE}" if described else UTC_RANGE_RULE
        elif inspect.isfunction(validator):
            raise LookupError(
                f"Field {field.name!r} has validator {validator.__qualname__}, which "
                "contracts.function_validators does not publish; add it there."
            )
    return found
