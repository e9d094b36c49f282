"""An ISP's life over the real broker: imported by one party and confirmed by the other, it is
the basis of the next routine transfer between them; suspended, the next one waits for a
practitioner's judgement.

The changes go through the API with the parties' admin tokens, the transfers through RabbitMQ, and
the receiving authority is a real TLS server; the envelope is verified with jwcrypto against the
JWKS the relay publishes.
"""

from __future__ import annotations

import io
import json

import pytest
from jwcrypto import jwk, jws

from service.web import create_app
from tests.support import examples
from tests.support.amqp import publish, reset_topology, running_worker, wait_until
from tests.support.https_receiver import HttpsReceiver, receive_everything_at
from tests.support.isps import NEWHAM, TOWER_HAMLETS, YAML
from tests.support.store_reads import has_transfer
from tests.support.tokens import bearer

pytestmark = pytest.mark.broker


def _verified(body: bytes, jwks: str) -> dict:
    token = jws.JWS()
    token.deserialize(body.decode())
    token.verify(jwk.JWKSet.from_json(jwks))
    return json.loads(token.payload)


def test_an_imported_isp_is_the_basis_until_it_is_suspended(services, broker_url, tmp_path):
    reset_topology(broker_url)
    client = create_app(services).test_client()
    admin = bearer(services, "admin", NEWHAM)
    sender = bearer(services, "publisher", NEWHAM)
    first = examples.event(examples.ROUTINE_WITHOUT_BASIS, id="isp-lifecycle-1")
    second = examples.event(examples.ROUTINE_WITHOUT_BASIS, id="isp-lifecycle-2")

    with HttpsReceiver(tmp_path / "tls") as receiver, running_worker(broker_url, services):
        receive_everything_at(services.store, receiver)
        imported = client.post(
            "/api/v1/isps/import",
            data={"file": (io.BytesIO(YAML.encode()), "newham-tower-hamlets.yaml")},
            headers=admin,
        )
        assert imported.status_code == 201, imported.get_json()
        confirmed = client.post(
            "/api/v1/isps/newham-tower-hamlets/versions/1/confirm",
            headers=bearer(services, "admin", TOWER_HAMLETS),
        )
        assert confirmed.get_json()["unconfirmed"] == [], confirmed.get_json()

        publish(broker_url, examples.encode(first))
        [request] = receiver.wait_for(1)
        wait_until(lambda: services.store.transfers.view(first["id"])["state"] == "delivered")

        suspended = client.post(
            "/api/v1/isps/newham-tower-hamlets/suspend",
            json={"reason": "The agreement is under review."},
            headers=admin,
        )
        assert suspended.status_code == 201, suspended.get_json()

        publish(broker_url, examples.encode(second))
        wait_until(lambda: has_transfer(services.store, second["id"]))

    payload = _verified(request.body, client.get("/.well-known/jwks.json").get_data(as_text=True))
    assert request.authority == TOWER_HAMLETS
    assert payload["event_id"] == first["id"]
    assert payload["basis"]["kind"] == "isp"
    assert (payload["basis"]["isp"]["id"], payload["basis"]["isp"]["version"]) == (
        "newham-tower-hamlets",
        1,
    )

    parked = client.get(f"/api/v1/transfers/{second['id']}", headers=sender)
    assert parked.status_code == 200
    view = parked.get_json()
    assert view["state"] == "awaiting_judgement"
    assert view["decision"]["reason"] == (
        "No applicable ISP; a practitioner judgement is needed to share."
    )
    assert view["decision"]["considered"] == [
        {"isp_id": "newham-tower-hamlets", "version": 2, "finding": "suspended"}
    ]
    assert view["envelope"] is None
    assert [r.envelope["event_id"] for r in receiver.requests] == [first["id"]]
