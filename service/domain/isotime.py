"""The text form of a time in views, audit details and envelopes: ISO 8601, UTC, with a Z.

An audit record's own time is shown as it was hashed instead (``audit_chain.timestamp``), so
that a reader can check the hash from what they were shown.
"""

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
