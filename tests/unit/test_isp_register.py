"""The register's rules: versions in order, who may write one, what applies between two parties."""

from datetime import date

import pytest

from contracts.reference import LONDON_AUTHORITIES
from service.domain.isp_register import (
    FINDING_REASONS,
    NewVersion,
    VersionOutOfOrder,
    applicability,
    in_force,
    new_versions,
    suspension,
    writers,
)
from service.domain.model import IspFinding, Outcome
from tests.support import examples
from tests.support.isps import NEWHAM, TOWER_HAMLETS, bilateral, confirmed_terms

CAMDEN = "E09000007"

FLOW = "caf.case-transfer.requested"


def test_a_new_isp_starts_at_version_1_and_each_amendment_is_the_next():
    first, second = bilateral(), bilateral(version=2, title="Amended")
    planned = new_versions({}, [first, second])
    assert planned == [NewVersion(first, None), NewVersion(second, first)]


@pytest.mark.parametrize(
    ("latest", "version", "message"),
    [
        ({}, 2, "ISP newham-tower-hamlets is new, so the next version is 1."),
        ({"newham-tower-hamlets": bilateral()}, 1, "is at version 1, so the next version is 2."),
        ({"newham-tower-hamlets": bilateral()}, 3, "is at version 1, so the next version is 2."),
    ],
)
def test_a_version_out_of_order_is_refused_with_where_and_why(latest, version, message):
    with pytest.raises(VersionOutOfOrder) as refused:
        new_versions(latest, [examples.pan_london_isp(), bilateral(version=version)])
    assert list(refused.value.errors) == [1]
    assert refused.value.errors[1]["version"][0].endswith(message)


def test_parties_to_a_new_isp_may_create_it_and_parties_to_the_current_version_amend_it():
    narrowed = bilateral(version=2, parties=[NEWHAM, "E09000001"])
    assert writers(NewVersion(bilateral(), None)) == {NEWHAM, TOWER_HAMLETS}
    assert writers(NewVersion(narrowed, bilateral())) == {NEWHAM, TOWER_HAMLETS}
    assert writers(NewVersion(examples.pan_london_isp(), None)) == set(LONDON_AUTHORITIES)


def test_parties_to_the_version_in_force_may_amend_it_whatever_comes_next():
    in_force = bilateral()
    camden_instead = bilateral(version=2, parties=[NEWHAM, CAMDEN], status="draft")
    following = NewVersion(bilateral(version=3), camden_instead)
    assert writers(following) == {NEWHAM, CAMDEN}
    assert writers(following, in_force) == {NEWHAM, TOWER_HAMLETS, CAMDEN}


def test_the_version_in_force_is_the_newest_not_waiting_for_its_day():
    v1 = bilateral()
    later = bilateral(version=2, effective_from="2027-01-01")
    draft = bilateral(version=3, status="draft")
    assert in_force([draft, later, v1], TODAY) == v1
    assert in_force([v1, later], date(2027, 1, 1)) == later
    suspended = suspension(v1, draft)
    assert in_force([v1, later, draft, suspended], TODAY) == suspended
    coming = bilateral(effective_from="2098-01-01")  # nothing in force yet: the agreement to come
    assert in_force([coming, bilateral(version=2, status="draft")], TODAY) == coming
    assert in_force([bilateral(status="draft")], TODAY)["status"] == "draft"


def test_a_suspension_is_the_next_version_with_the_terms_in_force():
    current = bilateral(version=4)
    assert suspension(current, current) == {**current, "version": 5, "status": "suspended"}
    assert current["status"] == "active", "the recorded version is left as it was"
    draft = bilateral(version=5, parties=[NEWHAM, CAMDEN], status="draft")
    assert suspension(current, draft) == {**current, "version": 6, "status": "suspended"}


TODAY = date(2026, 11, 24)


def _applicability(*documents, purpose="safeguarding", on=TODAY):
    return applicability(
        [confirmed_terms(d) for d in documents],
        from_authority=NEWHAM,
        to_authority=TOWER_HAMLETS,
        flow=FLOW,
        purpose=purpose,
        on=on,
    )


def test_the_bilateral_isp_is_the_basis_and_the_wider_one_is_outranked():
    pan_london = {**examples.pan_london_isp(), "purposes": ["safeguarding"]}
    decision = _applicability(pan_london, bilateral())
    assert decision.outcome is Outcome.SHARE_UNDER_ISP
    assert decision.isp.id == "newham-tower-hamlets"
    assert [(c.isp_id, c.finding) for c in decision.considered] == [
        ("newham-tower-hamlets", IspFinding.APPLICABLE),
        ("pan-london-caf", IspFinding.OUTRANKED),
    ]


def test_with_the_isp_suspended_nothing_applies_and_a_judgement_is_needed():
    decision = _applicability(suspension(bilateral(), bilateral()))
    assert decision.outcome is Outcome.AWAIT_JUDGEMENT
    assert [c.finding for c in decision.considered] == [IspFinding.SUSPENDED]


def test_an_isp_binds_those_its_signatories_signed_for_a_group_for_all_its_members():
    assert confirmed_terms(examples.pan_london_isp()).signed_by(TODAY) == set(LONDON_AUTHORITIES)
    one_signed = bilateral(signatories=bilateral()["signatories"][:1])
    assert confirmed_terms(one_signed).signed_by(TODAY) == {NEWHAM}
    answer = _applicability(one_signed)
    assert answer.isp is None
    assert [c.finding for c in answer.considered] == [IspFinding.NOT_SIGNED]


def test_the_date_asked_about_is_the_one_decided_on():
    assert _applicability(bilateral(), on=date(2029, 4, 1)).considered[0].finding is (
        IspFinding.EXPIRED
    )
    assert _applicability(bilateral(), on=date(2026, 3, 31)).considered[0].finding is (
        IspFinding.NOT_YET_EFFECTIVE
    )


def test_every_finding_has_a_reason_to_show():
    assert set(FINDING_REASONS) == set(IspFinding)
