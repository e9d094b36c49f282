"""Builds the envelope payload: what the receiver gets, before it is signed.

It carries the basis in full (the ISP reference, or the whole judgement record) because the
receiving authority must be able to show why it lawfully holds what it received.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.domain.isotime import iso
from service.domain.minimise import Minimised, with_case
from service.domain.model import BasisDecision, Outcome


@dataclass(frozen=True)
class Organisation:
    code: str
    name: str


def basis_record(decision: BasisDecision) -> dict[str, Any]:
    if decision.outcome is Outcome.SHARE_UNDER_ISP and decision.isp is not None:
        isp = decision.isp
        return {
            "kind": "isp",
            "isp": {
                "id": isp.id,
                "version": isp.version,
                "title": isp.title,
                "document_sha256": isp.document_sha256,
            },
        }
    if decision.outcome is Outcome.SHARE_UNDER_JUDGEMENT and decision.judgement is not None:
        return {"kind": "judgement", "judgement": decision.judgement.record}
    raise ValueError(f"A {decision.outcome} decision has no basis to put in an envelope.")


def build_envelope(
    *,
    envelope_id: str,
    issued_at: datetime,
    event: Mapping[str, Any],
    decision: BasisDecision,
    minimised: Minimised,
    sender: Organisation,
    recipient: Organisation,
) -> dict[str, Any]:
    return {
        "envelope_id": envelope_id,
        "event_id": event["id"],
        "issued_at": iso(issued_at),
        "case_reference": event["subject"],
        "purpose": event["data"]["sharing"]["purpose"],
        "from": {"code": sender.code, "name": sender.name},
        "to": {"code": recipient.code, "name": recipient.name},
        "basis": basis_record(decision),
        "data_categories": {"shared": list(minimised.shared), "withheld": list(minimised.withheld)},
        "event": with_case(event, minimised.case),
    }
