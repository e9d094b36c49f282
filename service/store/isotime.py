"""The text form of stored times in views and audit details: ISO 8601, UTC, with a Z."""

from datetime import datetime


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
