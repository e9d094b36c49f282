"""Decides on what basis a transfer may be shared: an ISP, a practitioner judgement, or neither.

The rules come from the London CAF Protocol, Annex 5, and the guidance it quotes:
- a routine flow between parties to an applicable ISP is shared under that ISP;
- the lack of an ISP is never a reason not to share: it needs a practitioner judgement instead;
- an ISP does not replace professional judgement, so ad hoc sharing always needs a judgement,
  and a judgement attached to a transfer is its basis even where an ISP would also apply;
- a judgement not to share is recorded and honoured: nothing is forwarded;
- a judgement decides only the transfer it is about: made by the sender's practitioner, for
  this recipient and purpose, and, to share, sharing something the transfer carries (else it
  would send an empty case, a share in name only);
- an ISP that shares none of the categories the transfer carries is, for it, no ISP (under it
  the envelope would carry an empty case): another ISP or a judgement decides it;
- with neither an applicable ISP nor a usable judgement the transfer waits (parked), never dropped.
Every ISP looked at is recorded with the reason it did or did not apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from contracts.rfc3339 import rfc3339_moment
from contracts.vocabulary import DATA_CATEGORIES
from service.domain.model import (
    BasisDecision,
    IspConsidered,
    IspFinding,
    IspTerms,
    Judgement,
    Outcome,
    TransferRequest,
)

# An ISP's dates (in force from, expiry, signed on) are days of the London calendar.
LONDON = ZoneInfo("Europe/London")


# A sender's clock may run a little ahead of the relay's; a judgement dated further ahead than
# this was not made when it says, and is refused rather than taken at its word.
CLOCK_SKEW = timedelta(minutes=5)


def decision_day(moment: datetime) -> date:
    """The London day of ``moment``: from 23:00 UTC in summer it is already the next day."""
    return moment.astimezone(LONDON).date()


def dated_ahead(decided_at: str, received_at: datetime) -> str | None:
    """Why a judgement's ``decided_at`` (ISO 8601, with its zone) cannot be true of one that
    reached the relay at ``received_at``, if it cannot: a decision is made before it is sent."""
    if rfc3339_moment(decided_at) <= received_at + CLOCK_SKEW:
        return None
    return (
        f"Later than the judgement reached the relay ({received_at.isoformat()}), by more "
        f"than the {CLOCK_SKEW.seconds // 60} minutes a clock may be ahead."
    )


def assess_isp(isp: IspTerms, request: TransferRequest, on: date) -> IspFinding:
    """Why ``isp`` does or does not cover ``request`` on day ``on`` (expiry day inclusive)."""
    if isp.status == "suspended":
        return IspFinding.SUSPENDED
    if isp.status != "active":
        return IspFinding.NOT_ACTIVE
    if on < isp.effective_from:
        return IspFinding.NOT_YET_EFFECTIVE
    if expired(isp, on):
        return IspFinding.EXPIRED
    ends = {request.from_authority, request.to_authority}
    if not ends <= isp.parties:
        return IspFinding.NOT_A_PARTY
    if not ends <= isp.signed_by(on):
        return IspFinding.NOT_SIGNED
    if not ends <= isp.confirmed:
        return IspFinding.NOT_CONFIRMED
    if request.flow not in isp.flows:
        return IspFinding.FLOW_NOT_COVERED
    if request.purpose not in isp.purposes:
        return IspFinding.PURPOSE_NOT_COVERED
    if request.mode != "routine":
        return IspFinding.AD_HOC_MODE
    if not isp.data_categories & request.carried:
        return IspFinding.SHARES_NOTHING_CARRIED
    return IspFinding.APPLICABLE


def expired(isp: IspTerms, on: date) -> bool:
    """Whether ``isp`` has expired by day ``on``: from the day after its ``expires_on``."""
    return isp.expires_on is not None and on > isp.expires_on


def versions_in_force(isps: Iterable[IspTerms], on: date) -> list[IspTerms]:
    """The version of each ISP that speaks for it on day ``on``: its newest that is not a draft
    and, if active, has come into effect; failing that, to record why it does not apply, the
    agreement still to come (its newest version that is not a draft), and a draft only when
    there is nothing else: a draft binds no one, so it does not speak over an agreement that
    will. A draft amendment, or one that starts later, leaves the version before it in force
    until then; a suspension or retirement acts at once."""
    newest: dict[str, IspTerms] = {}
    agreed: dict[str, IspTerms] = {}
    in_force: dict[str, IspTerms] = {}
    for isp in sorted(isps, key=lambda isp: (isp.id, isp.version)):
        newest[isp.id] = isp
        if isp.status != "draft":
            agreed[isp.id] = isp
            if not (isp.status == "active" and on < isp.effective_from):
                in_force[isp.id] = isp
    return [
        in_force.get(isp_id) or agreed.get(isp_id) or latest for isp_id, latest in newest.items()
    ]


def _precedence(isp: IspTerms) -> tuple[int, int, str]:
    """Most specific agreement first (fewest parties), then the one that came into effect last;
    id breaks ties. Only one version of each ISP is ranked, and version numbers of two
    different ISPs say nothing about which is newer."""
    return (len(isp.parties), -isp.effective_from.toordinal(), isp.id)


def _not_about(judgement: Judgement, request: TransferRequest) -> str | None:
    """Why ``judgement`` is not about ``request``, if it is not: made for another sender, for
    another recipient or for another purpose."""
    if judgement.decided_for != request.from_authority:
        return (
            f"The judgement was made for {judgement.decided_for}, not the sender "
            f"{request.from_authority}."
        )
    if request.to_authority not in judgement.recipients:
        return f"The judgement does not name {request.to_authority} as a recipient."
    if judgement.purpose != request.purpose:
        return f"The judgement was made for {judgement.purpose}, not {request.purpose}."
    return None


def _shares_nothing(judgement: Judgement, request: TransferRequest) -> str | None:
    """Why ``judgement``, a decision to share, would share nothing of ``request``, if so: every
    category it names is missing from the case as the relay holds it (never sent, or withheld
    by a basis since withdrawn)."""
    if judgement.decision != "share" or judgement.data_categories & request.carried:
        return None
    return (
        f"The judgement shares {_listed(judgement.data_categories)}, none of which the transfer "
        f"carries (it carries {_listed(request.carried)})."
    )


def _listed(categories: frozenset[str]) -> str:
    """``categories`` in vocabulary order, for a reason."""
    return ", ".join(category for category in DATA_CATEGORIES if category in categories)


def decide_basis(request: TransferRequest, isps: Iterable[IspTerms], on: date) -> BasisDecision:
    """The basis for ``request`` on day ``on``, given the versions of the ISPs in the register."""
    findings = [(isp, assess_isp(isp, request, on)) for isp in versions_in_force(isps, on)]
    applicable = sorted(
        (isp for isp, finding in findings if finding is IspFinding.APPLICABLE), key=_precedence
    )
    chosen = applicable[0] if applicable else None
    considered = tuple(
        IspConsidered(
            isp.id,
            isp.version,
            IspFinding.OUTRANKED if finding is IspFinding.APPLICABLE and isp != chosen else finding,
        )
        for isp, finding in sorted(findings, key=lambda pair: (pair[0].id, pair[0].version))
    )

    judgement = request.judgement
    if judgement is not None:
        # What the judgement is about comes first: one about another transfer decides nothing
        # here, whether it shares or not, nor does a share of nothing this transfer carries;
        # the transfer waits for one that is about it.
        unusable = _not_about(judgement, request) or _shares_nothing(judgement, request)
        if unusable is not None:
            return BasisDecision(Outcome.AWAIT_JUDGEMENT, unusable, considered, set_aside=judgement)
        if judgement.decision == "not_share":
            return BasisDecision(
                Outcome.WITHHOLD,
                "A practitioner decided not to share.",
                considered,
                judgement=judgement,
            )
        return BasisDecision(
            Outcome.SHARE_UNDER_JUDGEMENT,
            "Shared on a practitioner's recorded judgement.",
            considered,
            judgement=judgement,
            permitted_categories=judgement.data_categories,
        )

    if chosen is not None:
        return BasisDecision(
            Outcome.SHARE_UNDER_ISP,
            f"Routine flow under ISP {chosen.id} v{chosen.version}.",
            considered,
            isp=chosen,
            permitted_categories=chosen.data_categories,
        )

    reason = (
        "Ad hoc sharing needs a practitioner judgement; an ISP does not replace it."
        if request.mode == "ad_hoc"
        else "No applicable ISP; a practitioner judgement is needed to share."
    )
    return BasisDecision(Outcome.AWAIT_JUDGEMENT, reason, considered)
