"""Retry settings: the service-wide defaults (from the environment) and per-adapter overrides.

Both are plain numbers of attempts and seconds, so an admin can write them in JSON; this module
turns them into the domain's ``RetryPolicy``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from service.domain.retry import RetryPolicy


class RetrySettingsSchema(Schema):
    """Any subset may be given; what is left out keeps the service-wide default."""

    max_attempts = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000))
    max_age_seconds = fields.Float(validate=validate.Range(min=1, max=90 * 86400))
    base_delay_seconds = fields.Float(validate=validate.Range(min=0.01, max=86400))
    max_delay_seconds = fields.Float(validate=validate.Range(min=0.01, max=7 * 86400))


def policy(defaults: RetryPolicy, overrides: dict[str, Any] | None) -> RetryPolicy:
    """The defaults with an adapter's overrides applied."""
    given = overrides or {}

    def seconds(name: str, default: timedelta) -> timedelta:
        return timedelta(seconds=given[name]) if name in given else default

    return RetryPolicy(
        max_attempts=given.get("max_attempts", defaults.max_attempts),
        max_age=seconds("max_age_seconds", defaults.max_age),
        base_delay=seconds("base_delay_seconds", defaults.base_delay),
        max_delay=seconds("max_delay_seconds", defaults.max_delay),
    )


def from_environment(get: Callable[[str], str | None]) -> RetryPolicy:
    """The service-wide defaults, from CAF_RELAY_RETRY_<FIELD> (``get`` adds the prefix). One
    out of its field's range is refused at start-up, named, with the range it may be in."""
    schema = RetrySettingsSchema()
    given: dict[str, Any] = {}
    for name, field in schema.fields.items():
        value = get(f"RETRY_{name.upper()}")
        if value is None:
            continue
        whole = isinstance(field, fields.Integer)
        try:
            given[name] = schema.load({name: int(value) if whole else float(value)})[name]
        except (ValueError, ValidationError):
            (limits,) = (v for v in field.validators if isinstance(v, validate.Range))
            raise ValueError(
                f"CAF_RELAY_RETRY_{name.upper()} is {'a whole number' if whole else 'a number'}"
                f" from {limits.min} to {limits.max}, not {value!r}."
            ) from None
    return policy(RetryPolicy(), given)
