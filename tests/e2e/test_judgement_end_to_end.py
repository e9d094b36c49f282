"""A parked transfer released, or withheld, by a practitioner's judgement through the API.

The event comes in over the real RabbitMQ to the worker; the receiving authority is a real TLS
server; the judgement is recorded through the HTTP API with real tokens. Envelopes are verified
with jwcrypto against the JWKS the relay's web app publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from jwcrypto import jwk, jws

from service.web import create_app
from tests.support import examples, judgements
from tests.support.amqp import publish, reset_topology, running_worker, wait_until
from tests.support.https_receiver import HttpsReceiver, receive_everything_at
from tests.support.store_reads import audit_actions
from tests.support.tokens import bearer

pytestmark = pytest.mark.broker

NEWHAM, TOWER_HAMLETS, ISLINGTON = "E09000025", "E09000030", "E09000019"


@pytest.fixture
def receiver(services, tmp_path) -> Iterator[HttpsReceiver]:
    """Every London authority receives over HTTPS, at a path of its own on one TLS server."""
    with HttpsReceiver(tmp_path / "tls") as running:
        receive_everything_at(services.store, running)
        yield running


@pytest.fixture
def relay(services, broker_url, receiver) -> Iterator[None]:
    """The worker and its delivery loop, consuming from the test vhost."""
    reset_topology(broker_url)
    with running_worker(broker_url, services):
        yield


def _parked(services, broker_url) -> str:
    """Publish the routine example that no ISP covers, and wait for it to be parked."""
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    publish(broker_url, examples.encode(event))
    view = wait_until(lambda: services.store.transfers.view(event["id"]))
    assert view["state"] == "awaiting_judgement"
    return event["id"]


def _verified_payload(body: bytes, client) -> dict:
    keys = jwk.JWKSet.from_json(client.get("/.well-known/jwks.json").get_data(as_text=True))
    token = jws.JWS()
    token.deserialize(body.decode())
    token.verify(keys)
    return json.loads(token.payload)


def test_a_share_judgement_releases_a_parked_transfer_to_the_receiving_authority(
    services, broker_url, receiver, relay
):
    services.store.add_isp(examples.pan_london_isp())  # it does not cover this purpose
    client = create_app(services).test_client()
    event_id = _parked(services, broker_url)
    path = f"/api/v1/transfers/{event_id}/judgement"

    recipient = client.post(
        path, json=judgements.share(), headers=bearer(services, "practitioner", TOWER_HAMLETS)
    )
    assert recipient.status_code == 404
    refusals = [d for _, a, d in audit_actions(services.store) if a == "access_refused"]
    assert refusals[-1]["path"] == path and refusals[-1]["caller"]["authority"] == TOWER_HAMLETS
    assert receiver.requests == []

    response = client.post(
        path, json=judgements.share(), headers=bearer(services, "practitioner", NEWHAM)
    )
    assert response.status_code == 200, response.get_data(as_text=True)

    (arrived,) = receiver.wait_for(1)
    assert arrived.authority == TOWER_HAMLETS
    payload = _verified_payload(arrived.body, client)
    recorded = judgements.as_recorded(judgements.share())
    assert payload["event_id"] == event_id
    assert payload["basis"] == {"kind": "judgement", "judgement": recorded}
    assert payload["data_categories"]["shared"] == judgements.SHARED
    assert sorted(payload["event"]["data"]["case"]) == judgements.SHARED
    case = examples.event(examples.ROUTINE_WITHOUT_BASIS)["data"]["case"]
    assert "child_contact" in case and "child_contact" in payload["data_categories"]["withheld"]
    view = wait_until(
        lambda: (v := services.store.transfers.view(event_id))["state"] == "delivered" and v
    )
    assert view["envelope"]["envelope_id"] == payload["envelope_id"]


def test_a_not_share_judgement_withholds_it_and_the_sender_sees_why(
    services, broker_url, receiver, relay
):
    services.store.add_isp(examples.pan_london_isp())
    client = create_app(services).test_client()
    event_id = _parked(services, broker_url)

    response = client.post(
        f"/api/v1/transfers/{event_id}/judgement",
        json=judgements.not_share(),
        headers=bearer(services, "practitioner", NEWHAM),
    )
    assert response.status_code == 200 and response.get_json()["state"] == "withheld"

    # A transfer sent after it arrives: the delivery loop has run since, and sent nothing else.
    later = examples.routine("after-the-withheld-one")
    publish(broker_url, examples.encode(later))
    (arrived,) = receiver.wait_for(1)
    assert arrived.authority == ISLINGTON and arrived.envelope["event_id"] == later["id"]

    seen = client.get(
        f"/api/v1/transfers/{event_id}", headers=bearer(services, "publisher", NEWHAM)
    )
    assert seen.status_code == 200
    view = seen.get_json()
    assert view["state"] == "withheld"
    assert view["envelope"] is None and view["deliveries"] == [] and view["outbox"] is None
    assert view["decision"]["reason"] == "A practitioner decided not to share."
    reasons = view["decision"]["judgement"]["reasons"]
    assert reasons == judgements.not_share()["reasons"]
    assert [entry["action"] for entry in view["timeline"]] == [
        "received",
        "basis_decided",
        "awaiting_judgement",
        "judgement_recorded",
        "basis_decided",
        "withheld",
    ]
    assert view["timeline"][-1]["detail"] == {"reason": "A practitioner decided not to share."}
    assert view["timeline"][3]["detail"]["decision"] == "not_share"
