"""The sharing rules of DESIGN.md, decided for one transfer at a time."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.reference import LONDON_AUTHORITIES
from service.domain.basis import (
    assess_isp,
    dated_ahead,
    decide_basis,
    decision_day,
)
from service.domain.isp_register import ended_in_force
from service.domain.model import IspFinding, IspTerms, Judgement, Outcome, TransferRequest

HACKNEY, ISLINGTON, CAMDEN = "E09000012", "E09000019", "E09000007"
TODAY = date(2026, 11, 24)
SIGNED_ON = date(2026, 3, 20)
FLOW = "caf.case-transfer.requested"

PAN_LONDON = IspTerms(
    id="pan-london-caf",
    version=1,
    title="Pan-London",
    status="active",
    parties=frozenset(LONDON_AUTHORITIES),
    signatures=frozenset((code, SIGNED_ON) for code in LONDON_AUTHORITIES),
    confirmed=frozenset(LONDON_AUTHORITIES),
    flows=frozenset({FLOW}),
    purposes=frozenset({"continuity_of_early_help"}),
    data_categories=frozenset({"child_identity", "plan"}),
    effective_from=date(2026, 4, 1),
    expires_on=date(2029, 3, 31),
    document_sha256="0" * 64,
)
BILATERAL = replace(
    PAN_LONDON,
    id="hackney-islington",
    parties=frozenset({HACKNEY, ISLINGTON}),
    data_categories=frozenset({"child_identity", "plan", "education"}),
)
REQUEST = TransferRequest(
    flow=FLOW,
    from_authority=HACKNEY,
    to_authority=ISLINGTON,
    mode="routine",
    purpose="continuity_of_early_help",
    judgement=None,
    carried=frozenset({"child_identity", "child_contact", "plan"}),
)


def judgement(
    decision="share",
    recipients=(ISLINGTON,),
    purpose="continuity_of_early_help",
    decided_for=HACKNEY,
):
    return Judgement(
        decision=decision,
        purpose=purpose,
        data_categories=frozenset({"child_identity"}) if decision == "share" else frozenset(),
        recipients=frozenset(recipients),
        decided_for=decided_for,
        record={"decision": decision},
    )


def test_routine_flow_between_isp_parties_is_shared_under_the_isp():
    decision = decide_basis(REQUEST, [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.SHARE_UNDER_ISP
    assert decision.isp == PAN_LONDON
    assert decision.permitted_categories == PAN_LONDON.data_categories
    assert [c.finding for c in decision.considered] == [IspFinding.APPLICABLE]


def test_no_isp_is_never_a_rejection_the_transfer_waits_for_a_judgement():
    decision = decide_basis(REQUEST, [], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert "judgement" in decision.reason
    assert decision.permitted_categories == frozenset()


def test_ad_hoc_sharing_needs_a_judgement_even_between_isp_parties():
    decision = decide_basis(replace(REQUEST, mode="ad_hoc"), [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert [c.finding for c in decision.considered] == [IspFinding.AD_HOC_MODE]


def test_ad_hoc_sharing_with_a_judgement_is_shared_under_the_judgement():
    request = replace(REQUEST, mode="ad_hoc", judgement=judgement())
    decision = decide_basis(request, [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.SHARE_UNDER_JUDGEMENT
    assert decision.permitted_categories == frozenset({"child_identity"})
    assert decision.isp is None


def test_an_attached_judgement_is_the_basis_even_where_an_isp_applies():
    decision = decide_basis(replace(REQUEST, judgement=judgement()), [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.SHARE_UNDER_JUDGEMENT
    assert decision.considered[0].finding is IspFinding.APPLICABLE


def test_an_attached_judgement_shares_only_what_the_practitioner_chose_not_what_the_isp_allows():
    decision = decide_basis(replace(REQUEST, judgement=judgement()), [PAN_LONDON], TODAY)
    assert decision.permitted_categories == frozenset({"child_identity"})
    assert decision.isp is None


def test_a_judgement_not_to_share_withholds_even_under_an_isp():
    request = replace(REQUEST, judgement=judgement("not_share"))
    decision = decide_basis(request, [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.WITHHOLD
    assert not decision.shares
    assert decision.judgement == request.judgement


def test_a_judgement_for_another_recipient_does_not_cover_this_transfer():
    request = replace(REQUEST, mode="ad_hoc", judgement=judgement(recipients=(CAMDEN,)))
    decision = decide_basis(request, [], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert ISLINGTON in decision.reason
    assert decision.judgement is None, "no basis"
    assert decision.set_aside == request.judgement, "but a practitioner's decision, kept"


def test_an_ad_hoc_transfer_whose_judgement_names_another_recipient_does_not_fall_back_on_an_isp():
    request = replace(REQUEST, mode="ad_hoc", judgement=judgement(recipients=(CAMDEN,)))
    decision = decide_basis(request, [PAN_LONDON], TODAY)
    assert (decision.outcome, decision.isp) == (Outcome.AWAIT_JUDGEMENT, None)
    assert [c.finding for c in decision.considered] == [IspFinding.AD_HOC_MODE]


def test_a_judgement_for_another_purpose_does_not_cover_this_transfer():
    request = replace(REQUEST, mode="ad_hoc", judgement=judgement(purpose="safeguarding"))
    decision = decide_basis(request, [], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert "safeguarding" in decision.reason


# One case for each reason an ISP does, or does not, apply to a transfer.
ISP_FINDINGS = [
    (replace(PAN_LONDON, status="suspended"), REQUEST, TODAY, IspFinding.SUSPENDED),
    (replace(PAN_LONDON, status="draft"), REQUEST, TODAY, IspFinding.NOT_ACTIVE),
    (replace(PAN_LONDON, status="retired"), REQUEST, TODAY, IspFinding.NOT_ACTIVE),
    (PAN_LONDON, REQUEST, date(2026, 3, 31), IspFinding.NOT_YET_EFFECTIVE),
    (PAN_LONDON, REQUEST, date(2029, 4, 1), IspFinding.EXPIRED),
    (PAN_LONDON, REQUEST, date(2029, 3, 31), IspFinding.APPLICABLE),
    (BILATERAL, replace(REQUEST, to_authority=CAMDEN), TODAY, IspFinding.NOT_A_PARTY),
    (
        replace(PAN_LONDON, signatures=frozenset({(HACKNEY, SIGNED_ON)})),
        REQUEST,
        TODAY,
        IspFinding.NOT_SIGNED,
    ),
    (
        replace(PAN_LONDON, confirmed=frozenset({HACKNEY})),
        REQUEST,
        TODAY,
        IspFinding.NOT_CONFIRMED,
    ),
    (replace(PAN_LONDON, flows=frozenset()), REQUEST, TODAY, IspFinding.FLOW_NOT_COVERED),
    (
        PAN_LONDON,
        replace(REQUEST, purpose="safeguarding"),
        TODAY,
        IspFinding.PURPOSE_NOT_COVERED,
    ),
    (
        replace(PAN_LONDON, data_categories=frozenset({"education", "family_members"})),
        REQUEST,
        TODAY,
        IspFinding.SHARES_NOTHING_CARRIED,
    ),
]
ISP_FINDING_IDS = [
    "suspended",
    "draft",
    "retired",
    "before-effective",
    "day-after-expiry",
    "expiry-day-inclusive",
    "not-a-party",
    "recipient-not-signed",
    "recipient-signature-unconfirmed",
    "flow",
    "purpose",
    "shares-nothing-carried",
]


@pytest.mark.parametrize(("isp", "request_", "on", "finding"), ISP_FINDINGS, ids=ISP_FINDING_IDS)
def test_each_reason_an_isp_does_or_does_not_apply(isp, request_, on, finding):
    assert assess_isp(isp, request_, on) is finding


NOT_APPLYING = {
    case_id: case
    for case_id, case in zip(ISP_FINDING_IDS, ISP_FINDINGS, strict=True)
    if case[3] is not IspFinding.APPLICABLE
} | {"ad-hoc": (PAN_LONDON, replace(REQUEST, mode="ad_hoc"), TODAY, IspFinding.AD_HOC_MODE)}


@pytest.mark.parametrize(
    ("isp", "request_", "on", "finding"), NOT_APPLYING.values(), ids=NOT_APPLYING.keys()
)
def test_whatever_keeps_an_isp_from_applying_the_transfer_waits_and_a_judgement_shares_it(
    isp, request_, on, finding
):
    """The core rule: the lack of an ISP is never why a transfer is not shared. Whatever keeps
    the ISP from applying, the transfer is parked (not withheld, not refused) and the sender's
    practitioner's judgement to share it is enough to share it."""
    parked = decide_basis(request_, [isp], on)
    assert (parked.outcome, parked.permitted_categories) == (Outcome.AWAIT_JUDGEMENT, frozenset())
    assert [c.finding for c in parked.considered] == [finding]
    to_share = judgement(recipients=(request_.to_authority,), purpose=request_.purpose)
    judged = decide_basis(replace(request_, judgement=to_share), [isp], on)
    assert judged.outcome is Outcome.SHARE_UNDER_JUDGEMENT
    assert judged.permitted_categories == {"child_identity"}


def test_a_party_that_has_not_signed_is_not_bound_so_its_transfer_needs_a_judgement():
    three_parties = replace(
        PAN_LONDON,
        id="three-boroughs",
        parties=frozenset({HACKNEY, ISLINGTON, CAMDEN}),
        signatures=frozenset({(HACKNEY, SIGNED_ON), (ISLINGTON, SIGNED_ON)}),
    )
    signed = decide_basis(REQUEST, [three_parties], TODAY)
    assert (signed.outcome, signed.isp) == (Outcome.SHARE_UNDER_ISP, three_parties)

    unsigned = decide_basis(replace(REQUEST, to_authority=CAMDEN), [three_parties], TODAY)
    assert unsigned.outcome is Outcome.AWAIT_JUDGEMENT
    assert unsigned.considered[0].finding is IspFinding.NOT_SIGNED


def test_an_expired_isp_is_recorded_and_the_transfer_waits():
    decision = decide_basis(REQUEST, [PAN_LONDON], date(2030, 1, 1))
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert decision.considered[0].finding is IspFinding.EXPIRED


def test_an_isp_has_ended_by_its_version_in_force_from_the_day_after_it_expires():
    """What was signed under version 1 may go on while a version in force extends the date;
    an extension that starts later leaves a day on which the ISP has expired; a suspended or
    retired version in force ends it at once."""
    ends = replace(PAN_LONDON, expires_on=TODAY)
    extended = replace(PAN_LONDON, version=2, expires_on=date(2030, 3, 31))
    starts_later = replace(extended, effective_from=TODAY + timedelta(days=2))
    next_day = TODAY + timedelta(days=1)
    assert ended_in_force([ends], TODAY) == []
    assert ended_in_force([ends], next_day) == [ends]
    assert ended_in_force([ends, extended], next_day) == []
    assert ended_in_force([ends, starts_later], next_day) == [ends]
    assert ended_in_force([ends, starts_later], next_day + timedelta(days=1)) == []
    suspended = replace(ends, version=2, status="suspended")
    assert ended_in_force([ends, suspended], TODAY) == [suspended]
    retired = replace(extended, status="retired")
    assert ended_in_force([ends, retired], TODAY) == [retired]


def test_the_most_specific_isp_wins_and_the_other_is_recorded_as_outranked():
    for order in ([PAN_LONDON, BILATERAL], [BILATERAL, PAN_LONDON]):
        decision = decide_basis(REQUEST, order, TODAY)
        assert decision.isp == BILATERAL
        findings = {(c.isp_id, c.finding) for c in decision.considered}
        assert findings == {
            ("hackney-islington", IspFinding.APPLICABLE),
            ("pan-london-caf", IspFinding.OUTRANKED),
        }


def test_an_isp_sharing_nothing_the_case_carries_applies_not_even_to_sign_an_empty_case():
    """Under it the envelope would carry an empty case; for this transfer it is no ISP, so the
    transfer waits for a judgement rather than being sent a share in name only."""
    education_only = replace(BILATERAL, data_categories=frozenset({"education"}))
    decision = decide_basis(REQUEST, [education_only], TODAY)
    assert (decision.outcome, decision.isp) == (Outcome.AWAIT_JUDGEMENT, None)
    assert decision.reason == "No applicable ISP; a practitioner judgement is needed to share."
    carrying_it = replace(REQUEST, carried=REQUEST.carried | {"education"})
    assert decide_basis(carrying_it, [education_only], TODAY).isp == education_only


def test_the_most_specific_isp_that_shares_something_the_case_carries_is_chosen():
    """The bilateral ISP would outrank the pan-London one, but shares nothing of this case."""
    education_only = replace(BILATERAL, data_categories=frozenset({"education"}))
    for order in ([PAN_LONDON, education_only], [education_only, PAN_LONDON]):
        decision = decide_basis(REQUEST, order, TODAY)
        assert decision.isp == PAN_LONDON
        assert decision.permitted_categories == {"child_identity", "plan"}
        findings = {(c.isp_id, c.finding) for c in decision.considered}
        assert findings == {
            ("hackney-islington", IspFinding.SHARES_NOTHING_CARRIED),
            ("pan-london-caf", IspFinding.APPLICABLE),
        }


def test_between_isps_of_equal_reach_the_one_in_effect_last_wins_whatever_its_version():
    amended_often = replace(PAN_LONDON, id="london-older", version=4)
    newer = replace(
        PAN_LONDON,
        id="london-newer",
        effective_from=date(2026, 9, 1),
        data_categories=frozenset({"child_identity"}),
    )
    for order in ([amended_often, newer], [newer, amended_often]):
        decision = decide_basis(REQUEST, order, TODAY)
        assert decision.isp == newer
        assert {(c.isp_id, c.finding) for c in decision.considered} == {
            ("london-older", IspFinding.OUTRANKED),
            ("london-newer", IspFinding.APPLICABLE),
        }


def test_a_judgement_not_to_share_made_for_another_recipient_withholds_nothing():
    request = replace(REQUEST, judgement=judgement("not_share", recipients=(CAMDEN,)))
    decision = decide_basis(request, [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert ISLINGTON in decision.reason


def test_a_judgement_to_share_only_what_the_case_lacks_decides_nothing_even_under_an_isp():
    """It would send an empty case; the ISP does not override a practitioner either."""
    lacking = replace(judgement(), data_categories=frozenset({"education", "family_members"}))
    decision = decide_basis(replace(REQUEST, judgement=lacking), [PAN_LONDON], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert decision.set_aside == lacking and decision.judgement is None
    assert decision.reason == (
        "The judgement shares family_members, education, none of which the transfer carries "
        "(it carries child_identity, child_contact, plan)."
    )


def test_a_judgement_sharing_some_of_what_the_case_carries_shares_it():
    partly = replace(judgement(), data_categories=frozenset({"education", "plan"}))
    decision = decide_basis(replace(REQUEST, judgement=partly), [], TODAY)
    assert decision.outcome is Outcome.SHARE_UNDER_JUDGEMENT


def test_a_judgement_not_to_share_withholds_whatever_the_case_carries():
    decision = decide_basis(
        replace(REQUEST, judgement=judgement("not_share"), carried=frozenset({"child_identity"})),
        [],
        TODAY,
    )
    assert decision.outcome is Outcome.WITHHOLD


def test_a_judgement_made_for_another_authority_than_the_sender_decides_nothing():
    for decision_made in ("share", "not_share"):
        request = replace(REQUEST, judgement=judgement(decision_made, decided_for=ISLINGTON))
        decision = decide_basis(request, [PAN_LONDON], TODAY)
        assert decision.outcome is Outcome.AWAIT_JUDGEMENT, decision_made
        assert decision.reason == (
            f"The judgement was made for {ISLINGTON}, not the sender {HACKNEY}."
        )


def test_a_draft_amendment_leaves_the_version_in_force_applying():
    draft = replace(PAN_LONDON, version=2, status="draft", data_categories=frozenset())
    decision = decide_basis(REQUEST, [PAN_LONDON, draft], TODAY)
    assert (decision.outcome, decision.isp) == (Outcome.SHARE_UNDER_ISP, PAN_LONDON)
    assert [(c.version, c.finding) for c in decision.considered] == [(1, IspFinding.APPLICABLE)]


def test_an_amendment_applies_from_its_first_day_and_the_version_before_until_then():
    later = replace(PAN_LONDON, version=2, effective_from=TODAY + timedelta(days=1))
    before = decide_basis(REQUEST, [PAN_LONDON, later], TODAY)
    on_its_day = decide_basis(REQUEST, [PAN_LONDON, later], TODAY + timedelta(days=1))
    assert (before.isp, on_its_day.isp) == (PAN_LONDON, later)


def test_a_suspension_acts_at_once_even_of_an_amendment_not_yet_in_effect():
    later = replace(PAN_LONDON, version=2, effective_from=TODAY + timedelta(days=30))
    suspended = replace(later, version=3, status="suspended")
    decision = decide_basis(REQUEST, [PAN_LONDON, later, suspended], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert [(c.version, c.finding) for c in decision.considered] == [(3, IspFinding.SUSPENDED)]


def test_an_isp_whose_only_version_is_a_draft_is_recorded_as_not_active():
    draft = replace(PAN_LONDON, status="draft")
    decision = decide_basis(REQUEST, [draft], TODAY)
    assert [(c.version, c.finding) for c in decision.considered] == [(1, IspFinding.NOT_ACTIVE)]


def test_before_an_isp_comes_into_effect_its_agreement_to_come_is_recorded_not_a_draft_after_it():
    """The audit says why each ISP did not apply: not yet in effect, not "a draft", when a draft
    amendment follows an agreement still to come (as ``isp_register.in_force`` says of it)."""
    coming = replace(PAN_LONDON, effective_from=TODAY + timedelta(days=7))
    draft = replace(coming, version=2, status="draft")
    decision = decide_basis(REQUEST, [coming, draft], TODAY)
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert [(c.version, c.finding) for c in decision.considered] == [
        (1, IspFinding.NOT_YET_EFFECTIVE)
    ]
    on_its_day = decide_basis(REQUEST, [coming, draft], coming.effective_from)
    assert on_its_day.isp == coming


def test_a_party_binds_itself_only_from_the_day_its_signatory_signed():
    signs_later = replace(
        BILATERAL,
        signatures=frozenset({(HACKNEY, SIGNED_ON), (ISLINGTON, TODAY + timedelta(days=1))}),
    )
    before = decide_basis(REQUEST, [signs_later], TODAY)
    assert [c.finding for c in before.considered] == [IspFinding.NOT_SIGNED]
    on_the_day = decide_basis(REQUEST, [signs_later], TODAY + timedelta(days=1))
    assert on_the_day.isp == signs_later


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), date(2026, 4, 1)),  # 00:30 in summer time
        (datetime(2029, 3, 31, 22, 59, tzinfo=UTC), date(2029, 3, 31)),
        (datetime(2026, 11, 24, 23, 30, tzinfo=UTC), date(2026, 11, 24)),  # London is on UTC
    ],
)
def test_isp_dates_are_london_days(moment, day):
    assert decision_day(moment) == day


def test_a_judgement_may_be_dated_up_to_five_minutes_ahead_of_the_relays_clock_not_more():
    received = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert dated_ahead("2026-11-24T09:05:00Z", received) is None
    assert dated_ahead("2026-11-24T10:05:00+01:00", received) is None, "the same moment"
    assert dated_ahead("2026-11-24T09:05:00z", received) is None, "RFC 3339's lowercase z"
    assert dated_ahead("2026-11-24T09:05:01Z", received) == (
        "Later than the judgement reached the relay (2026-11-24T09:00:00+00:00), by more than "
        "the 5 minutes a clock may be ahead."
    )
