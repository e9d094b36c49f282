"""One event through validate -> decide -> minimise -> sign -> store, as the audit records it."""

import json

import pytest
from jwcrypto import jwk, jws

from service.access import Principal, Role
from service.relay import Rejection, Relay
from service.sealing import Sealer
from service.senders import EMBEDDED
from service.store.store import Store
from tests.support import examples, judgements, malformed, withdrawing
from tests.support.https_receiver import HttpsReceiver, receive_everything_at
from tests.support.store_reads import audit_actions, has_transfer, outbound

HACKNEY, ISLINGTON = "E09000012", "E09000019"
HACKNEY_PRACTITIONER = Principal("Hal Hackney", Role.PRACTITIONER, HACKNEY, "tok-hackney")


@pytest.fixture
def relay(services):
    services.store.add_isp(examples.pan_london_isp())
    return services.relay


@pytest.fixture
def receiver(services, tmp_path):
    """Every authority's HTTPS endpoint, with no ISP in the register."""
    with HttpsReceiver(tmp_path / "tls") as running:
        receive_everything_at(services.store, running)
        yield running


def _education_and_plan_isp() -> dict:
    """Hackney and Islington's own ISP: more specific than the pan-London one, sharing only
    the child's education and plan."""
    isp = examples.pan_london_isp()
    isp.update(
        id="hackney-islington-education",
        parties=[HACKNEY, ISLINGTON],
        data_categories=["education", "plan"],
    )
    return isp


def _without_education_or_plan() -> dict:
    """The routine example from Hackney to Islington, its case holding no education or plan."""
    event = examples.event(examples.ROUTINE_WITH_ISP)
    del event["data"]["case"]["education"], event["data"]["case"]["plan"]
    return event


def _actions(services, event_id):
    return [action for _, action, _ in audit_actions(services.store, event_id)]


def _envelope_payload(services, event_id):
    """The stored envelope, verified with jwcrypto against the published JWKS."""
    jws_text = outbound(services.store, event_id).jws
    token = jws.JWS()
    token.deserialize(jws_text)
    token.verify(jwk.JWKSet.from_json(json.dumps(services.keyring.jwks())))
    return json.loads(token.payload)


def test_a_routine_transfer_between_isp_parties_is_signed_under_the_isp(services, relay):
    event = examples.event(examples.ROUTINE_WITH_ISP)
    received = relay.receive(examples.encode(event), sender=EMBEDDED)
    assert (received.state, received.rejection, received.needs_delivery) == ("signed", None, True)
    payload = _envelope_payload(services, event["id"])
    assert payload["basis"]["kind"] == "isp"
    assert payload["basis"]["isp"]["id"] == "pan-london-caf"
    assert payload["data_categories"]["withheld"] == ["family_and_environment"]
    assert "family_and_environment" not in payload["event"]["data"]["case"]
    assert payload["to"] == {"code": "E09000019", "name": "Islington"}
    assert _actions(services, event["id"]) == ["received", "basis_decided", "minimised", "signed"]


def test_an_ad_hoc_transfer_is_signed_under_its_judgement_with_the_full_record(services, relay):
    event = examples.event(examples.AD_HOC_WITH_JUDGEMENT)
    assert relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
    payload = _envelope_payload(services, event["id"])
    assert payload["basis"] == {
        "kind": "judgement",
        "judgement": event["data"]["sharing"]["judgement"],
    }
    assert payload["data_categories"]["shared"] == [
        "child_identity",
        "child_contact",
        "plan",
        "lead_professional",
    ]
    decided = dict(audit_actions(services.store, event["id"])[1][2])
    assert decided["considered"] == [
        {"isp_id": "pan-london-caf", "version": 1, "finding": "purpose_not_covered"}
    ]
    assert decided["judgement"]["consent"] == "not_sought"


def test_the_audit_says_who_sent_to_whom_and_what_was_shared_and_withheld(services, relay):
    event = examples.event(examples.ROUTINE_WITH_ISP)
    relay.receive(examples.encode(event), sender=EMBEDDED)
    details = {action: detail for _, action, detail in audit_actions(services.store, event["id"])}
    received = details["received"]
    assert (received["from_authority"], received["to_authority"]) == ("E09000012", "E09000019")
    assert received["case_reference"] == event["subject"]
    payload = _envelope_payload(services, event["id"])
    assert details["minimised"] == payload["data_categories"]
    assert details["minimised"]["withheld"] == ["family_and_environment"]


def test_the_audit_of_a_judgement_says_with_whom_and_for_what_purpose_it_shares(services, relay):
    """Golden rule 7: the recorded decision says for what purpose, as well as what and with
    whom; the envelope's recipient has it in the full record, the audit in the summary."""
    event = examples.event(examples.AD_HOC_WITH_JUDGEMENT)
    relay.receive(examples.encode(event), sender=EMBEDDED)
    judgement = event["data"]["sharing"]["judgement"]
    decided = dict(audit_actions(services.store, event["id"])[1][2])["judgement"]
    assert decided["purpose"] == judgement["purpose"] == "safeguarding"
    assert decided["recipients"] == judgement["recipients"] == ["E09000028"]
    assert decided["data_categories"] == judgement["data_categories"]
    assert decided["practitioner"] == judgement["practitioner"]


def test_an_attached_judgement_sharing_nothing_the_case_carries_parks_it_sending_nothing(
    services, relay
):
    """A decision to share that names only sections the case does not have would sign and
    send an envelope with an empty case: a share in name only. It gives no basis, so the
    transfer waits for a judgement that shares something, the first kept on the record."""
    event = examples.event(examples.AD_HOC_WITH_JUDGEMENT)
    del event["data"]["case"]["education"]
    event["data"]["sharing"]["judgement"]["data_categories"] = ["education"]

    received = relay.receive(examples.encode(event), sender=EMBEDDED)

    assert (received.state, received.rejection) == ("awaiting_judgement", None)
    assert outbound(services.store, event["id"]) is None
    details = dict((a, d) for _, a, d in audit_actions(services.store, event["id"]))
    assert details["judgement_set_aside"]["reason"] == (
        "The judgement shares education, none of which the transfer carries (it carries "
        "child_identity, child_contact, family_members, development_of_child, "
        "parents_and_carers, family_and_environment, plan, lead_professional)."
    )
    assert details["judgement_set_aside"]["data_categories"] == ["education"]
    view = services.store.transfers.view(event["id"])
    assert set(view["decision"]["set_aside_judgement"]["data_categories"]) == {"education"}


def test_an_isp_sharing_nothing_the_case_carries_sends_nothing_and_a_judgement_sends_it(
    services, receiver
):
    """The only ISP between them covers the flow and purpose but shares only education and
    plan, which this case lacks: under it the recipient would get an empty case. It is no
    basis for this transfer, so the transfer waits for a practitioner, whose judgement sends it."""
    services.store.add_isp(_education_and_plan_isp())
    event = _without_education_or_plan()

    received = services.relay.receive(examples.encode(event), sender=EMBEDDED)

    assert (received.state, received.rejection) == ("awaiting_judgement", None)
    assert withdrawing.deliverer(services).deliver_due("test") == 0
    assert receiver.requests == [] and outbound(services.store, event["id"]) is None
    decided = dict((a, d) for _, a, d in audit_actions(services.store, event["id"]))
    assert decided["basis_decided"]["outcome"] == "await_judgement"
    assert decided["basis_decided"]["considered"] == [
        {"isp_id": "hackney-islington-education", "version": 1, "finding": "shares_nothing_carried"}
    ]
    assert services.store.transfers.view(event["id"])["state"] == "awaiting_judgement"

    share = judgements.share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    share["practitioner"]["organisation"] = HACKNEY
    assert services.judgements.record(event["id"], share, by=HACKNEY_PRACTITIONER) == "signed"

    assert withdrawing.deliverer(services).deliver_due("test") == 1
    (delivered,) = receiver.requests
    assert delivered.envelope["basis"]["kind"] == "judgement"
    assert set(delivered.envelope["event"]["data"]["case"]) == {
        "child_identity",
        "lead_professional",
    }


def test_an_isp_sharing_nothing_the_case_carries_gives_way_to_one_that_shares_something(
    services, relay
):
    """The bilateral ISP would outrank the pan-London one, but shares nothing of this case:
    the transfer goes under the pan-London ISP, with what that ISP allows."""
    services.store.add_isp(_education_and_plan_isp())
    event = _without_education_or_plan()

    assert relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"

    payload = _envelope_payload(services, event["id"])
    assert payload["basis"]["isp"]["id"] == "pan-london-caf"
    assert "child_identity" in payload["event"]["data"]["case"]
    decided = dict(audit_actions(services.store, event["id"])[1][2])
    assert decided["considered"] == [
        {
            "isp_id": "hackney-islington-education",
            "version": 1,
            "finding": "shares_nothing_carried",
        },
        {"isp_id": "pan-london-caf", "version": 1, "finding": "applicable"},
    ]


def test_a_transfer_with_no_basis_is_parked_not_rejected(services, relay):
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    received = relay.receive(examples.encode(event), sender=EMBEDDED)
    assert (received.state, received.rejection) == ("awaiting_judgement", None)
    assert outbound(services.store, event["id"]) is None
    view = services.store.transfers.view(event["id"])
    assert view["decision"]["outcome"] == "await_judgement"
    assert _actions(services, event["id"]) == ["received", "basis_decided", "awaiting_judgement"]


def test_a_judgement_not_to_share_is_recorded_and_nothing_is_signed(services, relay):
    event = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    assert relay.receive(examples.encode(event), sender=EMBEDDED).state == "withheld"
    assert outbound(services.store, event["id"]) is None
    view = services.store.transfers.view(event["id"])
    assert view["decision"]["judgement"]["reasons"]["necessity"].startswith("The receiving")


def test_the_same_event_id_twice_is_a_duplicate_and_stored_once(services, relay):
    body = examples.encode(examples.event(examples.ROUTINE_WITH_ISP))
    assert relay.receive(body, sender=EMBEDDED).duplicate is False
    again = relay.receive(body, sender=EMBEDDED)
    assert again.duplicate is True and again.needs_delivery is False


@pytest.mark.parametrize(("body", "rejection", "reason"), malformed.BAD_INPUT)
def test_bad_input_is_refused_with_a_reason_that_is_audited(
    services, relay, body, rejection, reason
):
    received = relay.receive(body, sender=EMBEDDED)
    assert received.rejection is rejection
    assert reason in received.reason
    audited = [d for _, action, d in audit_actions(services.store) if action == "rejected"]
    sent_by = {"via": "embedded"}
    assert audited == [
        {"rejection": rejection.value, "reason": received.reason, "sent_by": sent_by}
    ]


def test_a_key_given_twice_is_quoted_into_the_audit_only_if_it_could_be_a_fields_name(
    services, relay
):
    body = examples.encode(examples.event(examples.ROUTINE_WITH_ISP)).replace(
        b'"child_identity": {', b'"child_identity": {"Amara Okafor": 1, "Amara Okafor": 2, ', 1
    )

    received = relay.receive(body, sender=EMBEDDED)

    assert received.rejection is Rejection.NOT_JSON
    assert received.reason == "Not JSON we accept: (a key not quoted) given twice in one object."


def test_an_unknown_field_named_with_case_data_is_not_quoted_into_the_audit(services, relay):
    """The audit is kept for good (a hash chain, never purged), so a refusal's reason names an
    unknown field only if it could be a field's name; the publisher still gets it in errors."""
    event = examples.event(examples.ROUTINE_WITH_ISP)
    event["data"]["case"]["child_identity"]["Amara Okafor 2015-03-01"] = "x"
    event["data"]["urgent"] = True

    received = relay.receive(examples.encode(event), sender=EMBEDDED)

    assert received.rejection is Rejection.CONTRACT
    child_identity = received.errors["data"]["case"]["child_identity"]
    assert child_identity == {"Amara Okafor 2015-03-01": ["Unknown field."]}
    audited = [d for _, action, d in audit_actions(services.store) if action == "rejected"]
    assert "Okafor" not in json.dumps(audited) and "2015-03-01" not in received.reason
    assert '"urgent": ["Unknown field."]' in received.reason, "a field-like name still shown"


def test_an_event_at_the_size_limit_is_taken_and_one_byte_more_is_refused(services, relay):
    limit = services.settings.max_event_bytes
    body = examples.encode(examples.event(examples.ROUTINE_WITH_ISP))
    at_limit = body + b" " * (limit - len(body))  # whitespace after the JSON: the same event
    assert relay.receive(at_limit, sender=EMBEDDED).state == "signed"
    over = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="one-byte-over"))
    over += b" " * (limit + 1 - len(over))
    received = relay.receive(over, sender=EMBEDDED)
    assert received.rejection is Rejection.OVERSIZED
    assert received.reason == f"Event is {limit + 1} bytes; the limit is {limit}."
    assert not has_transfer(services.store, "one-byte-over")


class _FailsToStore(Store):
    """The real store, but with a bug: a transaction holding the event "unstorable" fails."""

    def record_intake(self, items, **kwargs):
        if any(getattr(item, "event", {}).get("id") == "unstorable" for item in items):
            raise RuntimeError("cannot store this event")
        return super().record_intake(items, **kwargs)


def test_a_batch_stores_each_outcome_once_and_one_it_cannot_store_sinks_no_other(services):
    services.store.add_isp(examples.pan_london_isp())
    store = _FailsToStore(services.store.url, services.settings.secret_box())
    relay = Relay(
        store,
        Sealer(services.keyring),
        child_keys=services.child_keys,
        max_event_bytes=services.settings.max_event_bytes,
    )
    first = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="batch-1"))
    unstorable = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="unstorable"))
    last = examples.encode(examples.event(examples.ROUTINE_WITHOUT_BASIS, id="batch-2"))
    try:
        outcomes = relay.receive_many(
            [(body, EMBEDDED) for body in (first, b"{", first, unstorable, last)]
        )
    finally:
        store.close()

    stored, not_json, duplicate, failed, parked = outcomes
    assert (stored.state, stored.duplicate) == ("signed", False)
    assert not_json.rejection is Rejection.NOT_JSON
    assert duplicate.duplicate is True and not duplicate.needs_delivery
    assert isinstance(failed, RuntimeError)
    assert parked.state == "awaiting_judgement"
    assert _actions(services, "batch-1") == [
        "received",
        "basis_decided",
        "minimised",
        "signed",
        "duplicate",
    ]
    assert not has_transfer(services.store, "unstorable")
    assert services.store.transfers.counts_by_state() == {"signed": 1, "awaiting_judgement": 1}
    assert services.audit.verify().intact
