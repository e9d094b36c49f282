"""What a transfer's recorded decision keeps as an ISP's ending withdraws it, a judgement
replaces it, and a late delivery gives the withdrawn one back."""

from service.domain.model import (
    BasisDecision,
    Judgement,
    Outcome,
    judged_decision,
    reinstated_decision,
    withdrawn_decision,
)

UNDER_ISP = {
    "outcome": "share_under_isp",
    "reason": "ISP pan-london-caf v1 applies.",
    "considered": [{"isp_id": "pan-london-caf", "version": 1, "finding": "applies"}],
    "permitted_categories": ["child_identity"],
    "isp": {"id": "pan-london-caf", "version": 1},
}
NOT_TO_SHARE = {"decision": "not_share", "reasons": {"necessity": "Not needed there."}}


def _not_to_share() -> BasisDecision:
    judgement = Judgement(
        decision="not_share",
        purpose="continuity_of_early_help",
        data_categories=frozenset(),
        recipients=frozenset({"E09000019"}),
        decided_for="E09000012",
        record=NOT_TO_SHARE,
    )
    return BasisDecision(Outcome.WITHHOLD, "Judged not to share.", (), judgement=judgement)


def test_a_judgement_on_a_withdrawn_transfer_keeps_the_decision_withdrawn():
    parked = withdrawn_decision(UNDER_ISP, ended_by=2, status="suspended")
    judged = judged_decision(_not_to_share(), parked)
    assert judged["judgement"] == NOT_TO_SHARE and "isp" not in judged
    assert judged["withdrawn"] == UNDER_ISP


def test_a_judgement_on_a_transfer_never_withdrawn_keeps_nothing_more():
    parked = {"outcome": "await_judgement", "reason": "No ISP applies.", "considered": []}
    assert "withdrawn" not in judged_decision(_not_to_share(), parked)


def test_a_late_delivery_gives_back_the_isp_decision_and_keeps_an_overtaken_judgement():
    parked = withdrawn_decision(UNDER_ISP, ended_by=2, status="suspended")
    assert reinstated_decision(parked) == UNDER_ISP
    judged = judged_decision(_not_to_share(), parked)
    assert reinstated_decision(judged) == {**UNDER_ISP, "overtaken_judgement": NOT_TO_SHARE}
