"""RFC 3339 date-times read as Python reads them, with no marshmallow.

The contracts validate date-times (``contracts.common``) and the domain reads validated ones
(``service.domain.basis``); both need the one rule here, and the domain must not pull in the
schema library to get it.
"""

from datetime import datetime


def rfc3339_moment(text: str) -> datetime:
    """A date-time as RFC 3339 writes it, read as Python does: with its zone written ``z``,
    which RFC 3339 allows and Python's reader does not."""
    return datetime.fromisoformat(upper_z(text))


def upper_z(text: str) -> str:
    return text[:-1] + "Z" if text.endswith("z") else text
