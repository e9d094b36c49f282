"""The ISP register's rules: how versions follow one another, who may add one, what applies.

An ISP is never edited: every change (an amendment, a suspension) is a new version, so that a
transfer recorded as shared "under ISP x v2" keeps pointing at the agreement it rested on.
A decision takes each ISP's version in force on its day (``basis.versions_in_force``). Kept pure
so the store can enforce the order inside its transaction and the service layer can check it
before writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from contracts.reference import expand_parties
from contracts.vocabulary import DATA_CATEGORIES
from service.domain.basis import decide_basis, expired, versions_in_force
from service.domain.model import (
    BasisDecision,
    IspFinding,
    IspTerms,
    TransferRequest,
    isp_terms,
    signatory_parties,
)

SUSPENDED = "suspended"
# The statuses of a version that binds no one, whoever has signed it.
BINDS_NO_ONE = frozenset({SUSPENDED, "retired"})

# What each finding means to someone asking whether an ISP applies; one line each.
FINDING_REASONS: dict[IspFinding, str] = {
    IspFinding.APPLICABLE: (
        "Applies: a routine transfer like this one is shared under it, if its case carries a "
        "category it shares."
    ),
    IspFinding.OUTRANKED: (
        "Applies, but another takes precedence (fewer parties, or newer) for a case carrying a "
        "category that one shares."
    ),
    IspFinding.NOT_ACTIVE: "Not active (a draft, or retired).",
    IspFinding.SUSPENDED: "Suspended: no transfer is shared under it.",
    IspFinding.NOT_YET_EFFECTIVE: "Not yet in effect on that date.",
    IspFinding.EXPIRED: "Expired before that date.",
    IspFinding.NOT_A_PARTY: "The two authorities are not both parties to it.",
    IspFinding.NOT_SIGNED: "One of the two authorities is a party that has not signed it.",
    IspFinding.NOT_CONFIRMED: (
        "One of the two authorities has a signature on it that its own admin has not confirmed."
    ),
    IspFinding.FLOW_NOT_COVERED: "It does not cover that flow.",
    IspFinding.PURPOSE_NOT_COVERED: "It does not cover that purpose.",
    IspFinding.AD_HOC_MODE: "Ad hoc sharing needs a practitioner judgement, ISP or not.",
    IspFinding.SHARES_NOTHING_CARRIED: (
        "It shares none of the categories the case carries: nothing would be sent under it."
    ),
}


class VersionOutOfOrder(Exception):
    """A version that is not the next one of its ISP; ``errors`` by position, field-level."""

    def __init__(self, message: str, errors: dict[int, dict[str, list[str]]]) -> None:
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True)
class NewVersion:
    document: dict[str, Any]  # the version to record, in its published JSON form
    previous: dict[str, Any] | None  # the version it follows; None for a new ISP


def new_versions(
    latest: Mapping[str, dict[str, Any]], documents: Sequence[dict[str, Any]]
) -> list[NewVersion]:
    """Pair each document with the version it follows; each must be the next of its ISP.

    ``latest`` is the newest recorded version of each ISP. Documents of one ISP follow each
    other in the order given, so one file may carry an ISP's whole history.
    """
    newest = dict(latest)
    planned, errors = [], {}
    for index, document in enumerate(documents):
        previous = newest.get(document["id"])
        expected = previous["version"] + 1 if previous else 1
        if document["version"] != expected:
            said = (
                f"ISP {document['id']} is at version {previous['version']}"
                if previous
                else f"ISP {document['id']} is new"
            )
            errors[index] = {"version": [f"{said}, so the next version is {expected}."]}
        planned.append(NewVersion(document, previous))
        newest[document["id"]] = document
    if errors:
        raise VersionOutOfOrder("Each ISP version must follow the one before.", errors)
    return planned


def writers(version: NewVersion, in_force: dict[str, Any] | None = None) -> frozenset[str]:
    """The authorities whose admins may record ``version``.

    The parties to the version it follows, and to the version ``in_force`` today if that is an
    earlier one: a party may amend itself out, a stranger may not amend itself in, and an
    amendment still to come (or a draft) that leaves a party out does not take the agreement
    it is bound by today out of its hands. A new ISP has nothing to follow, so its own parties
    may create it.
    """
    parties = expand_parties((version.previous or version.document)["parties"])
    return parties | expand_parties(in_force["parties"]) if in_force else parties


def in_force(versions: Sequence[dict[str, Any]], on: date) -> dict[str, Any]:
    """The version of one ISP (its recorded versions, in any order) in force on day ``on``, by
    the rule decisions follow (``basis.versions_in_force``); before any is, the agreement still
    to come (its newest version that is not a draft), and a draft only when there is nothing
    else: a draft binds no one, so its parties speak for the ISP only if no one else does."""
    (speaking,) = versions_in_force([isp_terms(v, confirmed=()) for v in versions], on)
    return next(v for v in versions if v["version"] == speaking.version)


def confirmable(document: dict[str, Any], acts_for: Callable[[str], bool]) -> frozenset[str]:
    """The parties signed for on ``document`` whose signatures a caller may confirm: those it
    ``acts_for`` (its own authority; every one, for a global admin). One party's admin cannot
    bind another by writing that party's signatory into a version."""
    return frozenset(party for party in signatory_parties(document) if acts_for(party))


def suspension(current: dict[str, Any], newest: dict[str, Any]) -> dict[str, Any]:
    """The version that suspends ``current``, the version in force: its terms, suspended, as
    the version after ``newest`` (which may be a draft or an amendment still to come)."""
    return {**current, "version": newest["version"] + 1, "status": SUSPENDED}


def applicability(
    isps: Iterable[IspTerms],
    *,
    from_authority: str,
    to_authority: str,
    flow: str,
    purpose: str,
    on: date,
) -> BasisDecision:
    """What the relay would decide for a routine transfer with no judgement attached, whose case
    carries every category.

    The very decision a transfer gets (``decide_basis``), so the answer cannot drift from it. A
    real case may carry less: an ISP sharing none of what it carries is no basis for it (finding
    ``shares_nothing_carried``), and the next applicable ISP, or a judgement, decides it; so an
    ``applicable`` ISP applies to a case carrying a category it shares, and an ``outranked`` one
    may be the basis of a case that carries none of the chosen one's.
    """
    request = TransferRequest(
        flow=flow,
        from_authority=from_authority,
        to_authority=to_authority,
        mode="routine",
        purpose=purpose,
        judgement=None,
        carried=frozenset(DATA_CATEGORIES),
    )
    return decide_basis(request, isps, on)


def ended_in_force(isps: Iterable[IspTerms], on: date) -> list[IspTerms]:
    """The ISPs whose version in force on day ``on`` binds no one (suspended, retired) or has
    expired: nothing signed under any of their versions may be sent that day (rules 1 and 2).

    An envelope signed under a version since superseded goes on as long as the ISP's version in
    force applies, as an amendment leaves it to be delivered as decided; one that extends the
    date, once in force, so extends it. Recording a suspension or retirement withdraws what is
    waiting at once; it is listed here too, for what a race stored after it, or what was in
    flight then and is handed out again (``service.store.ended_isps``)."""
    return [
        isp
        for isp in versions_in_force(isps, on)
        if isp.status in BINDS_NO_ONE or (isp.status == "active" and expired(isp, on))
    ]
