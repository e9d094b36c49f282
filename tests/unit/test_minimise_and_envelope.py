"""Only what the basis permits leaves; the envelope names its basis and what was held back."""

import copy
from datetime import UTC, date, datetime

import pytest

from service.domain.envelope import Organisation, build_envelope
from service.domain.minimise import minimise
from service.domain.model import BasisDecision, IspTerms, Judgement, Outcome

CASE = {
    "plan": {"actions": []},
    "child_identity": {"given_name": "A"},
    "family_and_environment": {"income": "x"},
    "education": {"school_name": "S"},
}
ISP = IspTerms(
    id="pan-london-caf",
    version=3,
    title="Pan-London",
    status="active",
    parties=frozenset(),
    signatures=frozenset(),
    confirmed=frozenset(),
    flows=frozenset(),
    purposes=frozenset(),
    data_categories=frozenset({"child_identity", "plan", "lead_professional"}),
    effective_from=date(2026, 1, 1),
    expires_on=None,
    document_sha256="a" * 64,
)
EVENT = {
    "id": "evt-1",
    "subject": "CAF-1",
    "type": "caf.case-transfer.requested",
    "data": {"sharing": {"purpose": "safeguarding", "mode": "routine"}, "case": CASE},
}


def test_minimise_keeps_permitted_sections_and_lists_the_rest_in_vocabulary_order():
    result = minimise(CASE, frozenset({"child_identity", "plan", "lead_professional"}))
    assert result.case == {"child_identity": CASE["child_identity"], "plan": CASE["plan"]}
    assert result.shared == ("child_identity", "plan")
    assert result.withheld == ("family_and_environment", "education")


def _envelope(decision):
    return build_envelope(
        envelope_id="11111111-1111-1111-1111-111111111111",
        issued_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        event=EVENT,
        decision=decision,
        minimised=minimise(CASE, decision.permitted_categories),
        sender=Organisation("E09000012", "Hackney"),
        recipient=Organisation("E09000019", "Islington"),
    )


def test_an_isp_envelope_references_the_isp_and_carries_only_permitted_sections():
    decision = BasisDecision(
        Outcome.SHARE_UNDER_ISP, "r", (), isp=ISP, permitted_categories=ISP.data_categories
    )
    received = copy.deepcopy(EVENT)
    envelope = _envelope(decision)
    assert envelope["basis"] == {
        "kind": "isp",
        "isp": {
            "id": "pan-london-caf",
            "version": 3,
            "title": "Pan-London",
            "document_sha256": "a" * 64,
        },
    }
    assert envelope["data_categories"] == {
        "shared": ["child_identity", "plan"],
        "withheld": ["family_and_environment", "education"],
    }
    assert set(envelope["event"]["data"]["case"]) == {"child_identity", "plan"}
    assert envelope["issued_at"] == "2026-11-24T12:00:00Z"
    assert envelope["from"] == {"code": "E09000012", "name": "Hackney"}
    assert received == EVENT, "the inbound event is left untouched"


def test_a_judgement_envelope_carries_the_whole_judgement_record():
    record = {"decision": "share", "practitioner": {"name": "Jo Reid"}}
    judgement = Judgement(
        "share", "safeguarding", frozenset({"education"}), frozenset(), "E09000012", record
    )
    decision = BasisDecision(
        Outcome.SHARE_UNDER_JUDGEMENT,
        "r",
        (),
        judgement=judgement,
        permitted_categories=judgement.data_categories,
    )
    envelope = _envelope(decision)
    assert envelope["basis"] == {"kind": "judgement", "judgement": record}
    assert envelope["event"]["data"]["case"] == {"education": CASE["education"]}


@pytest.mark.parametrize("outcome", [Outcome.AWAIT_JUDGEMENT, Outcome.WITHHOLD])
def test_nothing_is_enveloped_without_a_basis_to_share(outcome):
    with pytest.raises(ValueError, match="no basis"):
        _envelope(BasisDecision(outcome, "r", ()))
