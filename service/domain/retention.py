"""How long the relay keeps a settled transfer's payload, and what purging it leaves.

A transfer shared under an ISP is kept for that ISP version's retention period; one decided on
a practitioner's judgement, to share or not (no agreement sets a period), for the configured
default. The period runs from delivery, or from the judgement not to share. Purging takes out
only the case data; who sent what to whom, when and on what basis stays, in the transfer and in
the audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.domain.model import basis_kind


@dataclass(frozen=True)
class RetentionPeriod:
    days: int
    source: str  # what set the period, for the audit


def retention_period(
    decision: Mapping[str, Any],
    isp_days: Mapping[tuple[str, int], int],
    judgement_days: int,
) -> RetentionPeriod | None:
    """The period for a transfer with this recorded decision; None if nothing sets one."""
    kind = basis_kind(decision)
    if kind == "judgement":
        return RetentionPeriod(judgement_days, "judgement default")
    if kind == "isp":
        isp = decision["isp"]
        days = isp_days.get((isp["id"], isp["version"]))
        if days is not None:
            return RetentionPeriod(days, f"ISP {isp['id']} v{isp['version']}")
    return None


def purge_due(settled_at: datetime, period: RetentionPeriod, now: datetime) -> bool:
    """Whether the period is over, in whole days: counted so, a period however long (the ISP
    contract sets no upper bound) is never a date past year 9999 that fails the whole run."""
    return (now - settled_at).days >= period.days


def settled_by(now: datetime, shortest_days: int) -> datetime | None:
    """The latest settling moment whose payload could be due now, under the shortest period
    in use: what retention need read of the store (``purge_due`` decides each). None when no
    moment could be, as the period reaches back before year 1."""
    try:
        return now - timedelta(days=shortest_days)
    except OverflowError:
        return None


def without_case(event: Mapping[str, Any]) -> dict[str, Any]:
    """The stored event with its case data gone and its envelope attributes kept."""
    data = {key: value for key, value in event["data"].items() if key != "case"}
    return {**event, "data": data}
