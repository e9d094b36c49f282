"""Suspending an ISP withdraws the envelopes signed under it that are not yet delivered: their
transfers wait for a practitioner's judgement again, unless a delivery process holds them."""

import time
from datetime import timedelta

import pytest

from service.delivery import Deliverer
from service.domain.retry import RetryPolicy
from service.senders import EMBEDDED
from service.store.outbox import Lease
from service.web import create_app
from tests.support import examples, judgements
from tests.support.https_receiver import event_ids, https_recipients
from tests.support.store_reads import audit_actions
from tests.support.tokens import bearer

HACKNEY, ISLINGTON = "E09000012", "E09000019"
ISP = "/api/v1/isps/pan-london-caf"


@pytest.fixture
def receiver(services, tmp_path):
    with https_recipients(services, tmp_path, ISLINGTON) as running:
        yield running


@pytest.fixture
def client(services):
    return create_app(services).test_client()


def _deliverer(services) -> Deliverer:
    """Retries wait a second (full jitter at its top), so one pass makes one attempt."""
    return Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=1)),
        lease=timedelta(minutes=2),
        clock=services.clock,
        jitter=lambda: 1.0,
    )


def _send(services, event_id: str, lease: Lease | None = None):
    body = examples.encode(examples.routine(event_id, case=event_id))
    (outcome,) = services.relay.receive_many([(body, EMBEDDED)], lease=lease)
    assert outcome.state == "signed"
    return outcome


def _suspend(services, client) -> dict:
    response = client.post(
        f"{ISP}/suspend",
        json={"reason": "Breach under investigation."},
        headers=bearer(services, "admin", HACKNEY),
    )
    assert response.status_code == 201, response.get_json()
    (suspended,) = [d for _, a, d in audit_actions(services.store, None) if a == "isp_suspended"]
    return suspended


def _withdrawn(services, event_id: str) -> list[dict]:
    return [d for _, a, d in audit_actions(services.store, event_id) if a == "basis_withdrawn"]


def _share() -> dict:
    """Hackney's practitioner shares the child's identity with Islington after all."""
    document = judgements.share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    document["practitioner"]["organisation"] = HACKNEY
    return document


def test_an_envelope_retrying_at_the_suspension_is_never_sent_and_a_judgement_sends_its_own(
    services, receiver, client
):
    _send(services, "retrying")
    receiver.respond_with(503)
    assert _deliverer(services).deliver_due("test") == 1
    signed_under_isp = services.store.transfers.view("retrying")["envelope"]["envelope_id"]

    assert _suspend(services, client)["parked"] == 1
    # The recipient is back and the retry falls due: nothing is sent under the suspended ISP.
    time.sleep(1.1)
    assert _deliverer(services).deliver_due("test") == 0
    assert len(receiver.requests) == 1

    view = client.get(
        "/api/v1/transfers/retrying", headers=bearer(services, "practitioner", HACKNEY)
    ).get_json()
    assert (view["state"], view["envelope"], view["outbox"]) == ("awaiting_judgement", None, None)
    assert "suspended" in view["decision"]["reason"] and "isp" not in view["decision"]
    (withdrawn,) = _withdrawn(services, "retrying")
    assert (withdrawn["isp_id"], withdrawn["version"], withdrawn["suspended_as"]) == (
        "pan-london-caf",
        1,
        2,
    )
    assert (withdrawn["by"]["role"], withdrawn["by"]["authority"]) == ("admin", HACKNEY)
    assert (withdrawn["reason"], withdrawn["envelope_id"], withdrawn["was"]) == (
        "Breach under investigation.",
        signed_under_isp,
        "signed",
    )
    assert view["timeline"][-1]["action"] == "basis_withdrawn"
    parked = client.get(
        "/api/v1/transfers",
        query_string={"state": "awaiting_judgement"},
        headers=bearer(services, "practitioner", HACKNEY),
    ).get_json()["transfers"]
    assert [(t["event_id"], t["basis"]) for t in parked] == [("retrying", "none")]
    assert services.store.operations.transfers_by_basis() == {"none": 1}

    judged = client.post(
        "/api/v1/transfers/retrying/judgement",
        json=_share(),
        headers=bearer(services, "practitioner", HACKNEY),
    )
    assert judged.status_code == 200, judged.get_json()
    assert _deliverer(services).deliver_due("test") == 1
    (_, sent) = receiver.requests
    assert sent.envelope["basis"]["kind"] == "judgement"
    assert sent.envelope["envelope_id"] != signed_under_isp
    view = services.store.transfers.view("retrying")
    assert view["state"] == "delivered"
    assert view["envelope"]["envelope_id"] == sent.envelope["envelope_id"]


def test_a_failed_transfer_under_the_isp_is_parked_and_cannot_be_redelivered(
    services, receiver, client
):
    _send(services, "failed")
    receiver.respond_with(400)
    _deliverer(services).deliver_due("test")
    assert services.store.transfers.view("failed")["state"] == "failed"

    assert _suspend(services, client)["parked"] == 1

    assert services.store.transfers.view("failed")["state"] == "awaiting_judgement"
    assert _withdrawn(services, "failed")[0]["was"] == "failed"
    redeliver = client.post(
        "/api/v1/transfers/failed/redeliver", headers=bearer(services, "admin", ISLINGTON)
    )
    assert redeliver.status_code == 404, "to its recipient, a parked transfer is unknown"
    redeliver = client.post(
        "/api/v1/transfers/failed/redeliver", headers=bearer(services, "admin", HACKNEY)
    )
    assert redeliver.status_code == 409
    assert _deliverer(services).deliver_due("test") == 0
    assert len(receiver.requests) == 1


def _claim(services, lease: timedelta):
    """What a delivery loop's claim takes of the outbox now, under ``lease``."""
    return services.store.outbox.claim(
        worker="test",
        now=services.clock(),
        lease=lease,
        limit=1,
        per_recipient=1,
        in_flight={},
    )


@pytest.mark.parametrize("held", ["claimed", "handed over by intake"])
def test_an_envelope_in_flight_at_the_suspension_is_delivered_as_decided(
    services, receiver, client, held
):
    if held == "claimed":
        _send(services, "in-flight")
        in_flight = _claim(services, timedelta(minutes=2))
    else:
        lease = Lease("test", services.clock() + timedelta(minutes=2))
        in_flight = [_send(services, "in-flight", lease=lease).held]
    assert len(in_flight) == 1

    assert _suspend(services, client)["parked"] == 0
    assert _deliverer(services).deliver_group(in_flight).results == ["delivered"]

    assert event_ids(receiver.requests) == ["in-flight"]
    view = services.store.transfers.view("in-flight")
    assert view["state"] == "delivered" and view["decision"]["isp"]["id"] == "pan-london-caf"
    assert _withdrawn(services, "in-flight") == []


def test_a_delivery_recorded_after_its_envelope_was_withdrawn_gives_the_transfer_its_basis_back(
    services, receiver, client
):
    """Its lease ran out before the suspension, yet its attempt (started within the lease) had
    delivered it: the store must not say it awaits a judgement."""
    _send(services, "late")
    claimed = _claim(services, timedelta(0))
    assert _suspend(services, client)["parked"] == 1

    assert _deliverer(services).deliver_group(claimed).results == ["delivered"]

    view = services.store.transfers.view("late")
    assert view["state"] == "delivered" and view["decision"]["isp"]["id"] == "pan-london-caf"
    assert view["envelope"]["envelope_id"] == claimed[0].envelope.envelope_id
    actions = [a for _, a, _ in audit_actions(services.store, "late")]
    assert actions[-3:] == ["basis_withdrawn", "basis_reinstated", "delivered"]


def test_a_reinstated_transfers_subject_access_export_says_what_was_shared(
    services, receiver, client
):
    """Its basis back, the minimising before the withdrawal holds again: the family is told
    what went, not that nothing did."""
    body = examples.routine("late")
    _send(services, "late")
    claimed = _claim(services, timedelta(0))
    _suspend(services, client)
    assert _deliverer(services).deliver_group(claimed).results == ["delivered"]

    nhs_number = body["data"]["case"]["child_identity"]["nhs_number"]
    (exported,) = services.subject_access.export({"nhs_number": nhs_number})["transfers"]
    assert exported["delivery"]["outcome"] != "awaiting_judgement"
    assert exported["basis"]["kind"] == "isp"
    assert exported["categories"]["shared"], exported["categories"]
    assert exported["categories"]["withheld"] == ["family_and_environment"]


def test_a_judgement_after_a_suspension_lists_as_withheld_what_the_isp_withheld_too(
    services, receiver, client
):
    """The stored event holds only what the ISP allowed, but the case had more: the new
    envelope, its audit and the family's export must still say that was withheld (rule 5)."""
    _send(services, "retrying")
    receiver.respond_with(503)
    _deliverer(services).deliver_due("test")
    _suspend(services, client)
    judged = client.post(
        "/api/v1/transfers/retrying/judgement",
        json=_share(),
        headers=bearer(services, "practitioner", HACKNEY),
    )
    assert judged.status_code == 200, judged.get_json()
    time.sleep(1.1)
    receiver.respond_with(200)
    assert _deliverer(services).deliver_due("test") == 1

    sent = receiver.requests[-1].envelope
    assert "family_and_environment" in sent["data_categories"]["withheld"], sent["data_categories"]
    (minimised,) = [d for _, a, d in audit_actions(services.store, "retrying") if a == "minimised"][
        -1:
    ]
    assert "family_and_environment" in minimised["withheld"]
