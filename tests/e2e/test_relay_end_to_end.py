"""Publish the example events to the real RabbitMQ and read what the receiving authorities got.

The relay runs as its own process (`caf-relay worker`), configured only through its environment,
and delivers through the `https` adapter to a real TLS server or through the `amqp` adapter to a
borough's queue. Envelopes are verified with jwcrypto, not the joserfc the relay signs with, and
against the JWKS the relay's web app publishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pika
import pytest
from jwcrypto import jwk, jws

from contracts.vocabulary import DATA_CATEGORIES
from service.web import create_app
from tests.support import examples
from tests.support.amqp import publish, reset_topology, wait_until
from tests.support.https_receiver import HttpsReceiver, bearer_token_for, receive_everything_at
from tests.support.processes import RelayProcess
from tests.support.store_reads import audit_actions, has_transfer

pytestmark = pytest.mark.broker

BOROUGH_EXCHANGE = "borough.caf-inbox"

# What each example's receiving authority gets: (code, basis kind) or None for nothing.
EXPECTED = {
    examples.ROUTINE_WITH_ISP: ("E09000019", "isp"),
    examples.AD_HOC_WITH_JUDGEMENT: ("E09000028", "judgement"),
    examples.ROUTINE_WITHOUT_BASIS: None,
    examples.JUDGEMENT_NOT_TO_SHARE: None,
}

Received = dict[str, list[bytes]]  # authority code -> bodies that arrived there


@pytest.fixture
def relay_process(services, broker_url) -> Iterator[RelayProcess]:
    """`caf-relay worker` on the test database and vhost, consuming once this yields."""
    reset_topology(broker_url)
    relay = RelayProcess(services, broker_url).start()
    try:
        yield relay
    finally:
        assert relay.stop() == 0


@pytest.fixture
def via_https(services, tmp_path) -> Iterator[Callable[[], Received]]:
    """Every London authority receives over HTTPS at its own path on one real TLS server."""
    with HttpsReceiver(tmp_path / "tls") as receiver:
        receive_everything_at(services.store, receiver)

        def received() -> Received:
            got: Received = {}
            for request in receiver.requests:
                code = request.path.rsplit("/", 1)[1]
                assert request.headers["Authorization"] == f"Bearer {bearer_token_for(code)}"
                assert request.headers["Content-Type"] == "application/jose+json"
                got.setdefault(code, []).append(request.body)
            return got

        yield received


@pytest.fixture
def via_amqp(services, broker_url) -> Iterator[Callable[[], Received]]:
    """Every London authority receives on a queue of its own behind one borough exchange."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.exchange_declare(BOROUGH_EXCHANGE, "direct", durable=True)
    parts = urlsplit(broker_url)
    for code in services.store.authorities():
        channel.queue_declare(f"inbox.{code}", durable=True)
        channel.queue_purge(f"inbox.{code}")
        channel.queue_bind(f"inbox.{code}", BOROUGH_EXCHANGE, code)
        services.store.organisations.set_adapter(
            code,
            "amqp",
            {
                "url": f"amqp://{parts.hostname}:{parts.port}{parts.path}",
                "exchange": BOROUGH_EXCHANGE,
                "routing_key": code,
            },
            {"username": "guest", "password": "guest"},
        )
    arrived: Received = {}

    def received() -> Received:
        for code in services.store.authorities():
            while (message := channel.basic_get(f"inbox.{code}", auto_ack=True))[0]:
                assert message[1].content_type == "application/jose+json"
                arrived.setdefault(code, []).append(message[2])
        return arrived

    yield received
    connection.close()


@pytest.fixture(params=["https", "amqp"])
def received(request) -> Callable[[], Received]:
    return request.getfixturevalue(f"via_{request.param}")


def _published_jwks(services) -> jwk.JWKSet:
    response = create_app(services).test_client().get("/.well-known/jwks.json")
    assert response.status_code == 200
    return jwk.JWKSet.from_json(response.get_data(as_text=True))


def _verified_payload(body: bytes, keys: jwk.JWKSet) -> dict:
    token = jws.JWS()
    token.deserialize(body.decode())
    token.verify(keys)
    return json.loads(token.payload)


def test_each_example_arrives_signed_on_its_basis_or_is_held_back(
    services, broker_url, received, relay_process
):
    services.store.add_isp(examples.pan_london_isp())
    events = {name: examples.event(name) for name in EXPECTED}

    publish(broker_url, *(examples.encode(event) for event in events.values()))
    wait_until(lambda: all(has_transfer(services.store, e["id"]) for e in events.values()))
    wait_until(lambda: sum(map(len, received().values())) == 2)
    # The delivery is recorded after the recipient has the envelope: wait for that too.
    delivered = [events[name]["id"] for name, expected in EXPECTED.items() if expected]
    wait_until(
        lambda: all(services.store.transfers.view(i)["state"] == "delivered" for i in delivered)
    )

    keys = _published_jwks(services)
    arrived = received()
    assert sorted(arrived) == sorted(code for code, _ in filter(None, EXPECTED.values()))
    for name, expected in EXPECTED.items():
        event = events[name]
        view = services.store.transfers.view(event["id"])
        if expected is None:
            assert view["state"] in ("awaiting_judgement", "withheld")
            assert view["envelope"] is None and view["deliveries"] == []
            continue
        code, basis_kind = expected
        (body,) = arrived[code]
        payload = _verified_payload(body, keys)
        case = event["data"]["case"]
        forwarded = payload["event"]["data"]["case"]
        assert view["state"] == "delivered"
        assert payload["envelope_id"] == view["envelope"]["envelope_id"]
        assert payload["basis"]["kind"] == basis_kind
        assert payload["to"]["code"] == code
        shared, withheld = (
            payload["data_categories"]["shared"],
            payload["data_categories"]["withheld"],
        )
        assert sorted(shared + withheld) == sorted(DATA_CATEGORIES)
        assert {key: forwarded[key] for key in shared} == {key: case[key] for key in shared}
        assert not set(withheld) & set(forwarded)
        if basis_kind == "isp":
            assert payload["basis"]["isp"]["id"] == "pan-london-caf"
            assert withheld == ["family_and_environment"]
        else:
            judgement = event["data"]["sharing"]["judgement"]
            assert payload["basis"]["judgement"] == judgement
            assert shared == judgement["data_categories"]

    assert services.store.transfers.view(events[examples.ROUTINE_WITHOUT_BASIS]["id"])["state"] == (
        "awaiting_judgement"
    )
    assert services.store.transfers.view(events[examples.JUDGEMENT_NOT_TO_SHARE]["id"])[
        "state"
    ] == ("withheld")


def test_an_event_published_twice_arrives_once(services, broker_url, received, relay_process):
    services.store.add_isp(examples.pan_london_isp())
    event = examples.event(examples.ROUTINE_WITH_ISP, id="e2e-published-twice")
    later = examples.event(examples.ROUTINE_WITH_ISP, id="e2e-published-after")

    publish(broker_url, examples.encode(event), examples.encode(event), examples.encode(later))
    wait_until(lambda: len(received().get("E09000019", [])) >= 2)
    wait_until(lambda: services.store.transfers.view(later["id"])["state"] == "delivered")

    keys = _published_jwks(services)
    arrived = [_verified_payload(body, keys)["event"]["id"] for body in received()["E09000019"]]
    assert sorted(arrived) == sorted([event["id"], later["id"]])
    assert "duplicate" in [action for _, action, _ in audit_actions(services.store, event["id"])]
