"""The facts the sharing rules reason about, lifted out of contracts and storage."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from contracts.reference import expand_parties
from contracts.vocabulary import IspFinding


@dataclass(frozen=True)
class IspTerms:
    """What an ISP agrees, with party groups already expanded to organisation codes.

    ``signatures`` are the parties its signatories signed for (a group's signatory signs for
    its members), each with the day it was signed: it binds only them, from that day.
    ``confirmed`` are the parties whose own admin (or a global admin) recorded or confirmed
    their signature: one party's admin cannot bind another by writing its signatory down.
    """

    id: str
    version: int
    title: str
    status: str
    parties: frozenset[str]
    signatures: frozenset[tuple[str, date]]
    confirmed: frozenset[str]
    flows: frozenset[str]
    purposes: frozenset[str]
    data_categories: frozenset[str]
    effective_from: date
    expires_on: date | None
    document_sha256: str

    def signed_by(self, on: date) -> frozenset[str]:
        """The parties whose signatories had signed by day ``on``."""
        return frozenset(party for party, signed_on in self.signatures if signed_on <= on)


@dataclass(frozen=True)
class Judgement:
    """A practitioner's recorded decision; ``record`` is the full record as received.

    ``decided_for`` is the organisation the practitioner decided for: only the sending
    authority's practitioners may decide what it shares.
    """

    decision: str
    purpose: str
    data_categories: frozenset[str]
    recipients: frozenset[str]
    decided_for: str
    record: dict[str, Any] = field(compare=False, hash=False)


@dataclass(frozen=True)
class TransferRequest:
    """One requested transfer, reduced to what the basis decision needs.

    ``carried`` are the data categories its case holds as the relay keeps it: a judgement or
    an ISP sharing none of them would send an empty case.
    """

    flow: str
    from_authority: str
    to_authority: str
    mode: str
    purpose: str
    judgement: Judgement | None
    carried: frozenset[str]


@dataclass(frozen=True)
class IspConsidered:
    isp_id: str
    version: int
    finding: IspFinding


class Outcome(StrEnum):
    SHARE_UNDER_ISP = "share_under_isp"
    SHARE_UNDER_JUDGEMENT = "share_under_judgement"
    AWAIT_JUDGEMENT = "await_judgement"
    WITHHOLD = "withhold"


@dataclass(frozen=True)
class BasisDecision:
    """The decision and its reasons, recorded whether or not anything is shared."""

    outcome: Outcome
    reason: str
    considered: tuple[IspConsidered, ...]
    isp: IspTerms | None = None
    judgement: Judgement | None = None
    permitted_categories: frozenset[str] = frozenset()
    # A judgement that came with the transfer but does not count for it (``reason`` says
    # why): no basis, yet a practitioner's decision all the same, kept on the record.
    set_aside: Judgement | None = None

    @property
    def shares(self) -> bool:
        return self.outcome in (Outcome.SHARE_UNDER_ISP, Outcome.SHARE_UNDER_JUDGEMENT)


def signatory_parties(document: dict[str, Any]) -> frozenset[str]:
    """The parties to an ISP version that its signatories signed for, groups expanded: a
    group's signatory (all London authorities, say) signs for the members that are parties, and
    for no one else, so no one else has a signature to confirm."""
    signed = expand_parties([signatory["party"] for signatory in document["signatories"]])
    return signed & expand_parties(document["parties"])


def isp_terms(document: dict[str, Any], *, confirmed: Collection[str]) -> IspTerms:
    """Lift a stored ISP (its published JSON form) into the terms the rules reason about;
    ``confirmed``: the parties whose signatures their own admins have confirmed."""
    expires = document.get("expires_on")
    return IspTerms(
        id=document["id"],
        version=document["version"],
        title=document["title"],
        status=document["status"],
        parties=expand_parties(document["parties"]),
        signatures=frozenset(
            (party, date.fromisoformat(signatory["signed_on"]))
            for signatory in document["signatories"]
            for party in expand_parties([signatory["party"]])
        ),
        confirmed=frozenset(confirmed),
        flows=frozenset(document["flows"]),
        purposes=frozenset(document["purposes"]),
        data_categories=frozenset(document["data_categories"]),
        effective_from=date.fromisoformat(document["effective_from"]),
        expires_on=date.fromisoformat(expires) if expires else None,
        document_sha256=document["document"]["sha256"],
    )


def transfer_request(event: dict[str, Any]) -> TransferRequest:
    """Lift a validated case-transfer event (its JSON form) into a request to decide on."""
    data = event["data"]
    sharing = data["sharing"]
    record = sharing.get("judgement")
    judgement = (
        Judgement(
            decision=record["decision"],
            purpose=record["purpose"],
            data_categories=frozenset(record["data_categories"]),
            recipients=frozenset(record["recipients"]),
            decided_for=record["practitioner"]["organisation"],
            record=record,
        )
        if record
        else None
    )
    return TransferRequest(
        flow=event["type"],
        from_authority=data["from_authority"],
        to_authority=data["to_authority"],
        mode=sharing["mode"],
        purpose=sharing["purpose"],
        judgement=judgement,
        carried=frozenset(data["case"]),
    )


# Where a decision keeps a judgement it set aside (``BasisDecision.set_aside``), from the
# transfer's parking until it is decided and after: a later judgement replaces it in the event.
SET_ASIDE = "set_aside_judgement"


def decision_record(decision: BasisDecision) -> dict[str, Any]:
    """The decision as recorded: outcome, reasons, every ISP considered, and the basis itself."""
    record: dict[str, Any] = {
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "considered": [
            {"isp_id": c.isp_id, "version": c.version, "finding": c.finding.value}
            for c in decision.considered
        ],
        "permitted_categories": sorted(decision.permitted_categories),
    }
    if decision.isp is not None:
        record["isp"] = {"id": decision.isp.id, "version": decision.isp.version}
    if decision.judgement is not None:
        record["judgement"] = decision.judgement.record
    if decision.set_aside is not None:
        record[SET_ASIDE] = decision.set_aside.record
    return record


def basis_kind(record: dict[str, Any]) -> str:
    """What a recorded decision rests on: ``isp``, ``judgement`` or ``none`` (parked)."""
    if "isp" in record:
        return "isp"
    return "judgement" if "judgement" in record else "none"


# How a version that ended an ISP's basis for an undelivered envelope counts in the decision
# that withdraws it; a retired one is not active.
ENDING_FINDINGS = {
    IspFinding.SUSPENDED.value: IspFinding.SUSPENDED,
    IspFinding.EXPIRED.value: IspFinding.EXPIRED,
}


def withdrawn_decision(
    record: dict[str, Any], ended_by: int, status: str, withheld: Sequence[str] = ()
) -> dict[str, Any]:
    """The decision of a transfer parked again because the ISP it was signed under was
    suspended, retired or expired (``status``, as version ``ended_by``) before it was delivered:
    no basis now, as with no applicable ISP, so it waits for a practitioner's judgement (rules
    1, 2 and 6). The decision withdrawn is kept under ``withdrawn``, for the record and for
    ``reinstated_decision``; the categories its minimising withheld, gone from the stored event,
    under ``withheld_before``, so that a judgement's envelope still lists them as withheld
    (rule 5)."""
    isp = record["isp"]
    finding = ENDING_FINDINGS.get(status, IspFinding.NOT_ACTIVE)
    ended = "expired" if finding is IspFinding.EXPIRED else f"was {status}"
    return {
        "outcome": Outcome.AWAIT_JUDGEMENT.value,
        "reason": (
            f"ISP {isp['id']} v{isp['version']}, which it was signed under, {ended} before it "
            "was delivered; a practitioner judgement is needed to share."
        ),
        "considered": [{"isp_id": isp["id"], "version": ended_by, "finding": finding.value}],
        "permitted_categories": [],
        "withheld_before": list(withheld),
        "withdrawn": record,
    }


def judged_decision(decision: BasisDecision, parked: dict[str, Any]) -> dict[str, Any]:
    """The decision as recorded for a judgement on a transfer whose ``parked`` decision it
    replaces. The decision an ISP's ending withdrew stays under ``withdrawn``: should the
    withdrawn envelope turn out to have arrived before the ending was recorded, it is that
    decision, not the judgement, that the recipient holds (``reinstated_decision``). A
    judgement the parked decision set aside stays too: it was recorded, and only there."""
    record = decision_record(decision)
    for kept in ("withdrawn", SET_ASIDE):
        if kept in parked:
            record[kept] = parked[kept]
    return record


def reinstated_decision(record: dict[str, Any]) -> dict[str, Any]:
    """The decision ``withdrawn_decision`` withdrew, for an envelope found delivered after all:
    its delivery, started within its lease, ended before the suspension was recorded.

    A judgement recorded since (one not to share: any other sent an envelope of its own) came
    after the envelope had arrived. It is kept, as ``overtaken_judgement``, for the sender and
    for the audit chain's digest of it, but the basis is the one the recipient's envelope
    carries."""
    reinstated = dict(record["withdrawn"])
    if "judgement" in record:
        reinstated["overtaken_judgement"] = record["judgement"]
    return reinstated
