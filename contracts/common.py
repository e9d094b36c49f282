"""Building blocks shared by several contracts: bounded text, organisation codes, lawful basis."""

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.rfc3339 import upper_z
from contracts.vocabulary import ARTICLE_6_BASES, ARTICLE_9_CONDITIONS, SPECIAL_CATEGORIES

ORG_CODE_PATTERN = r"^[A-Z][A-Z0-9]{2,15}$"

# Upper bounds keep a single event small enough to hold, sign and forward in memory; they are
# generous for prose written by practitioners.
SHORT_TEXT = 200
LONG_TEXT = 8000
MAX_LIST = 50
# The most items a listing gives in a page, in the API and at the command line alike.
MAX_PAGE = 500


class Pattern(validate.Regexp):
    """A pattern the whole value must match.

    Plain ``Regexp`` uses ``re.match``, whose ``$`` also matches before a final newline, so
    "E09000028\n" would pass here and then fail every receiver's JSON Schema check.
    """

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


# Text must say something: a name or a reason of spaces only is as good as none.
# ECMA-262's \s, which a published JSON Schema pattern means, spelt out: Python's differs (it
# takes \x1c-\x1f and \x85, not U+FEFF), and the code must refuse what the schema refuses.
_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK = validate.Regexp(rf"^[{_SPACE}]*[^{_SPACE}]", error="Must not be blank.")


OUT_OF_UTC_RANGE = "Out of range: it has no time in UTC."
UTC_RANGE_RULE = (
    "It must have a time in UTC: caf-relay refuses a moment in year 1 ahead of UTC or in "
    "year 9999 behind it (e.g. 0001-01-01T00:00:00+01:00, 9999-12-31T23:30:00-01:00), which "
    "would fall in year 0 or 10000 in UTC, outside what many date libraries can hold."
)


def contract_errors(exc: ValidationError) -> dict[str, Any]:
    """A refusal's errors, field by field, as JSON can carry them: a document read from YAML may
    have numbers or dates as keys, which marshmallow names its unknown-field errors by."""
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return _text_keys(messages)


def _text_keys(errors: Any) -> Any:
    if isinstance(errors, dict):
        return {str(key): _text_keys(value) for key, value in errors.items()}
    return errors


def has_utc_time(moment: datetime) -> bool:
    """False for a moment at the very ends of the calendar whose UTC time does not exist (year
    1 ahead of UTC, year 9999 behind it): it could not be stored."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


def in_utc_range(moment: datetime) -> None:
    """A validator refusing a moment with no time in UTC, field by field."""
    if not has_utc_time(moment):
        raise ValidationError(OUT_OF_UTC_RANGE)


def short_text(**kwargs) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=SHORT_TEXT), NOT_BLANK], **kwargs)


def long_text(**kwargs) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=LONG_TEXT), NOT_BLANK], **kwargs)


def org_code(**kwargs) -> fields.String:
    """An organisation code: an ONS GSS code for local authorities, or an admin-assigned code."""
    return fields.String(validate=Pattern(ORG_CODE_PATTERN), **kwargs)


def one_of(choices, **kwargs) -> fields.String:
    return fields.String(validate=validate.OneOf(choices), **kwargs)


def no_repeats(values) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("Items must not repeat.")


def unique_list(inner: fields.Field, *, min_items: int = 0, **kwargs) -> fields.List:
    return fields.List(
        inner,
        validate=[validate.Length(min=min_items, max=MAX_LIST), no_repeats],
        **kwargs,
    )


class StrictBoolean(fields.Boolean):
    """A JSON ``true`` or ``false``, nothing that merely looks like one.

    The relay forwards an event as it was received, not as marshmallow converted it, so a
    tolerated ``"yes"`` or ``1`` would reach the receiver and break the published contract.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictFloat(fields.Float):
    """A JSON number, not a numeric string (see ``StrictBoolean`` for why)."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


# What JSON Schema's "date" and "date-time" formats take (RFC 3339), where Python's fromisoformat
# also reads 20261120, 2026-W47-5 or a space for the T, and an offset's minutes past 59 (it
# reads "+01:60" as two hours, which a receiver's schema check refuses in the envelope).
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_TIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-5][0-9])"
)


class StrictDate(fields.Date):
    """A date written YYYY-MM-DD, as the published schemas say (see ``StrictBoolean`` for why
    a form merely readable as a date is not enough). A date YAML has already read (an ISP
    file) is a date."""

    def _deserialize(self, value, attr, data, **kwargs):
        # A YAML timestamp is a datetime, which is a date to marshmallow: its day would be the
        # day in whatever offset it was written in, not a date the writer chose.
        if isinstance(value, datetime):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(value, str) and DATE_TEXT.fullmatch(value) is None:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return parsed


class AwareDateTimeAnyZ(fields.AwareDateTime):
    """marshmallow's aware date-time, taking a zone written ``z`` as well as ``Z``, as RFC 3339
    allows and Python's reader does not."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = upper_z(value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictAwareDateTime(AwareDateTimeAnyZ):
    """An RFC 3339 date-time with its offset (``Z``, ``z`` or ``+01:00``), and a time in UTC.

    A moment such as 0001-01-01T00:00:00+01:00 is year 0 in UTC: signed and forwarded, it could
    break a receiver's date library, and any conversion of it to UTC raises.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.validators.insert(0, in_utc_range)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)  # says if the offset is missing
        if isinstance(value, str) and DATE_TIME_TEXT.fullmatch(value) is None:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return parsed


class LawfulBasisSchema(Schema):
    article_6 = one_of(ARTICLE_6_BASES, required=True)
    article_9 = one_of(ARTICLE_9_CONDITIONS)
    dpa_2018_schedule_1_condition = short_text()

    @validates_schema
    def article_9_comes_with_schedule_1(self, data, **kwargs):
        if ("article_9" in data) != ("dpa_2018_schedule_1_condition" in data):
            raise ValidationError(
                "article_9 and dpa_2018_schedule_1_condition are given together or not at all."
            )


def require_special_category_basis(categories, lawful_basis) -> None:
    """Special category data may be shared only with an Art. 9 condition on the basis."""
    special = sorted(set(categories) & SPECIAL_CATEGORIES)
    if special and "article_9" not in (lawful_basis or {}):
        raise ValidationError(
            f"lawful_basis needs article_9 and dpa_2018_schedule_1_condition to cover "
            f"special category data: {', '.join(special)}.",
            field_name="lawful_basis",
        )
