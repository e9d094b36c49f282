"""Recording a practitioner's judgement for a parked transfer, through the service layer."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
from jwcrypto import jwk, jws

from contracts.common import OUT_OF_UTC_RANGE
from service.access import OPERATOR, Principal, Role
from service.domain.judgement_digests import judgement_digest
from service.judgements import JudgementRefused, Judgements, Refusal
from service.sealing import Sealer
from service.senders import EMBEDDED
from service.store.transfers import as_its_recipient_sees
from tests.support import examples, judgements
from tests.support.store_reads import audit_actions, outbound

NEWHAM, TOWER_HAMLETS, HACKNEY = "E09000025", "E09000030", "E09000012"
NEWHAM_PRACTITIONER = Principal("Ada Newham", Role.PRACTITIONER, NEWHAM, "tok-newham")
TOWER_HAMLETS_PRACTITIONER = Principal("Tom Tower", Role.PRACTITIONER, TOWER_HAMLETS, "tok-th")


@pytest.fixture
def parked(services) -> str:
    """The example routine transfer with no applicable ISP, parked awaiting a judgement."""
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    received = services.relay.receive(examples.encode(event), sender=EMBEDDED)
    assert received.state == "awaiting_judgement"
    return event["id"]


def _actions(services, event_id: str) -> list[str]:
    return [action for _, action, _ in audit_actions(services.store, event_id)]


def _refusal(services, event_id, document, by) -> JudgementRefused:
    with pytest.raises(JudgementRefused) as caught:
        services.judgements.record(event_id, document, by=by)
    return caught.value


def test_a_share_judgement_signs_the_transfer_on_that_judgement_only(services, parked):
    judgement = judgements.share()
    woken = threading.Event()
    services.judgements.wake_on_signed(woken.set)

    state = services.judgements.record(parked, judgement, by=NEWHAM_PRACTITIONER)

    assert state == "signed" and woken.is_set()
    view = services.store.transfers.view(parked)
    assert view["state"] == "signed" and view["outbox"]["attempts"] == 0
    assert view["decision"]["outcome"] == "share_under_judgement"
    assert view["decision"]["judgement"] == judgements.as_recorded(judgement)
    assert _actions(services, parked)[-4:] == [
        "judgement_recorded",
        "basis_decided",
        "minimised",
        "signed",
    ]
    recorded = audit_actions(services.store, parked)[-4][2]
    assert recorded["by"] == NEWHAM_PRACTITIONER.describe()
    assert recorded["decision"] == "share" and recorded["consent"] == "not_sought"
    assert recorded["purpose"] == "safeguarding", "golden rule 7: for what purpose"
    assert "reasons" not in recorded, "the practitioner's prose stays out of the audit"

    token = jws.JWS()
    token.deserialize(outbound(services.store, parked).jws)
    token.verify(jwk.JWKSet.from_json(json.dumps(services.keyring.jwks())))
    payload = json.loads(token.payload)
    assert payload["basis"] == {"kind": "judgement", "judgement": view["decision"]["judgement"]}
    assert payload["data_categories"]["shared"] == ["child_identity", "lead_professional"]
    assert set(payload["event"]["data"]["case"]) == {"child_identity", "lead_professional"}


def test_a_not_share_judgement_withholds_the_transfer_and_says_why(services, parked):
    state = services.judgements.record(parked, judgements.not_share(), by=NEWHAM_PRACTITIONER)

    assert state == "withheld"
    view = services.store.transfers.view(parked)
    assert view["state"] == "withheld" and view["envelope"] is None and view["outbox"] is None
    assert view["decision"]["reason"] == "A practitioner decided not to share."
    withheld = view["timeline"][-1]
    assert (withheld["action"], withheld["detail"]) == (
        "withheld",
        {"reason": "A practitioner decided not to share."},
    )
    # An RFC 3339 time in UTC, no earlier than the transfer arrived.
    assert withheld["at"].endswith("Z")
    at = datetime.fromisoformat(withheld["at"])
    assert at.utcoffset() == timedelta(0)
    assert at >= datetime.fromisoformat(view["received_at"])
    assert _actions(services, parked)[-3:] == ["judgement_recorded", "basis_decided", "withheld"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"recipients": [HACKNEY]}, f"does not name {TOWER_HAMLETS} as a recipient"),
        ({"purpose": "school_admission"}, "was made for school_admission, not safeguarding"),
    ],
)
def test_a_judgement_that_gives_no_basis_is_refused_and_the_transfer_stays_parked(
    services, parked, changes, reason
):
    refused = _refusal(services, parked, judgements.share(**changes), NEWHAM_PRACTITIONER)

    assert refused.refusal is Refusal.NO_BASIS and reason in refused.reason
    view = services.store.transfers.view(parked)
    assert view["state"] == "awaiting_judgement" and view["envelope"] is None
    assert "judgement" not in view["decision"]
    assert _actions(services, parked)[-1] == "judgement_refused"


def test_a_judgement_sent_with_the_event_that_does_not_count_stays_on_record_after_another(
    services,
):
    """The practitioner who decided first (for the wrong recipient, say) decided all the same:
    golden rule 7 keeps who decided what and why, and the audit vouches for it, even once a
    colleague's judgement becomes the basis. It is the sender's own business: the recipient,
    never named in it, does not see it."""
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    first = judgements.share(recipients=[HACKNEY])
    event["data"]["sharing"]["judgement"] = first
    received = services.relay.receive(examples.encode(event), sender=EMBEDDED)
    assert received.state == "awaiting_judgement"
    [(_, _, set_aside)] = [
        r for r in audit_actions(services.store, event["id"]) if r[1] == "judgement_set_aside"
    ]
    assert set_aside["reason"] == f"The judgement does not name {TOWER_HAMLETS} as a recipient."
    assert set_aside["sha256"] == judgement_digest(first)  # as it came, as the event keeps it
    assert set_aside["recipients"] == [HACKNEY] and "reasons" not in set_aside

    services.judgements.record(event["id"], judgements.not_share(), by=NEWHAM_PRACTITIONER)

    view = services.store.transfers.view(event["id"])
    assert view["state"] == "withheld"
    assert view["decision"]["judgement"] == judgements.as_recorded(judgements.not_share())
    assert view["decision"]["set_aside_judgement"] == first
    seen_by_recipient = as_its_recipient_sees(view)
    assert "set_aside_judgement" not in seen_by_recipient["decision"]
    assert "judgement_set_aside" not in [e["action"] for e in seen_by_recipient["timeline"]]


def test_a_judgement_to_share_only_what_the_case_lacks_is_refused_not_sent_empty(services, parked):
    """The parked example carries no education section: sharing only that would sign and
    send an envelope with an empty case. The practitioner is told, and may decide again."""
    refused = _refusal(
        services, parked, judgements.share(data_categories=["education"]), NEWHAM_PRACTITIONER
    )

    assert refused.refusal is Refusal.NO_BASIS
    assert refused.reason == (
        "This judgement gives no basis to share: The judgement shares education, none of which "
        "the transfer carries (it carries child_identity, child_contact, lead_professional)."
    )
    view = services.store.transfers.view(parked)
    assert view["state"] == "awaiting_judgement" and view["envelope"] is None
    assert outbound(services.store, parked) is None
    assert _actions(services, parked)[-1] == "judgement_refused"
    shared = judgements.share(data_categories=["education", "child_identity"])
    assert services.judgements.record(parked, shared, by=NEWHAM_PRACTITIONER) == "signed"


def test_a_judgement_breaking_its_contract_gets_field_level_errors(services, parked):
    document = judgements.share(decision="maybe")
    del document["consent"]

    refused = _refusal(services, parked, document, NEWHAM_PRACTITIONER)

    assert refused.refusal is Refusal.INVALID
    assert set(refused.errors) == {"decision", "consent"}
    assert services.store.transfers.view(parked)["state"] == "awaiting_judgement"


def test_a_judgement_dated_ahead_of_the_relays_clock_is_refused_naming_the_field(services, parked):
    tomorrow = (services.clock() + timedelta(days=1)).isoformat()

    refused = _refusal(services, parked, judgements.share(decided_at=tomorrow), NEWHAM_PRACTITIONER)

    assert refused.refusal is Refusal.INVALID
    [why] = refused.errors["decided_at"]
    assert why.startswith("Later than the judgement reached the relay (")
    assert why.endswith("by more than the 5 minutes a clock may be ahead.")
    assert services.store.transfers.view(parked)["state"] == "awaiting_judgement"
    assert _actions(services, parked)[-1] == "judgement_refused"
    in_time = (services.clock() + timedelta(minutes=4)).isoformat()
    assert (
        services.judgements.record(
            parked, judgements.share(decided_at=in_time), by=NEWHAM_PRACTITIONER
        )
        == "signed"
    )


def test_a_judgement_decided_at_a_moment_with_no_time_in_utc_is_refused_not_signed(
    services, parked
):
    """0001-01-01T00:00:00+01:00 is year 0 in UTC: it was signed and sent before."""
    document = judgements.share(decided_at="0001-01-01T00:00:00+01:00")

    refused = _refusal(services, parked, document, NEWHAM_PRACTITIONER)

    assert (refused.refusal, refused.errors) == (
        Refusal.INVALID,
        {"decided_at": [OUT_OF_UTC_RANGE]},
    )
    assert services.store.transfers.view(parked)["state"] == "awaiting_judgement"
    assert outbound(services.store, parked) is None


@pytest.mark.parametrize(
    "by",
    [
        TOWER_HAMLETS_PRACTITIONER,
        Principal("Newham admin", Role.ADMIN, NEWHAM, "tok-admin"),
        Principal("Newham case system", Role.PUBLISHER, NEWHAM, "tok-pub"),
    ],
    ids=["recipient's practitioner", "borough admin", "publisher"],
)
def test_only_a_practitioner_of_the_sending_authority_may_decide(services, parked, by):
    refused = _refusal(services, parked, judgements.share(), by)

    assert refused.refusal is Refusal.NOT_PERMITTED
    assert NEWHAM in refused.reason
    assert services.store.transfers.view(parked)["state"] == "awaiting_judgement"


def test_the_operator_may_decide_and_a_second_judgement_is_refused(services, parked):
    assert services.judgements.record(parked, judgements.share(), by=OPERATOR) == "signed"

    refused = _refusal(services, parked, judgements.not_share(), NEWHAM_PRACTITIONER)

    assert refused.refusal is Refusal.NOT_PARKED
    assert "signed" in refused.reason
    assert services.store.transfers.view(parked)["state"] == "signed"
    assert _actions(services, parked).count("judgement_recorded") == 1


def test_a_judgement_recorded_while_another_was_being_decided_leaves_that_one_refused(
    services, parked
):
    def clock_while_a_colleague_decides():
        # Called once the first judgement has passed its checks: a colleague's lands now.
        services.judgements.record(parked, judgements.not_share(), by=NEWHAM_PRACTITIONER)
        return services.clock()

    racing = Judgements(services.store, Sealer(services.keyring), clock_while_a_colleague_decides)
    with pytest.raises(JudgementRefused) as caught:
        racing.record(parked, judgements.share(), by=NEWHAM_PRACTITIONER)

    assert caught.value.refusal is Refusal.NOT_PARKED and "withheld" in caught.value.reason
    view = services.store.transfers.view(parked)
    assert view["state"] == "withheld" and view["envelope"] is None and view["outbox"] is None
    assert _actions(services, parked).count("judgement_recorded") == 1


def test_an_unknown_transfer_is_refused(services):
    refused = _refusal(services, "no-such-event", judgements.share(), NEWHAM_PRACTITIONER)
    assert refused.refusal is Refusal.UNKNOWN_TRANSFER
