"""``/api/v1/authorities``: the register, receipt keys, publishers and adapters, over HTTP."""

import hashlib
import logging

import pytest
import sqlalchemy as sa
from joserfc.jwk import OKPKey

from service.access import OPERATOR
from service.senders import EMBEDDED
from service.signing import KeyRing, verify
from service.store import tables
from service.web import create_app
from tests.support import examples
from tests.support.https_receiver import HttpsReceiver
from tests.support.store_reads import audit_actions, broker_publisher
from tests.support.tokens import bearer

HACKNEY, ISLINGTON = "E09000012", "E09000019"
SECRET = "s3cret-bearer-f0r-islington-4f9c2e7a"


@pytest.fixture
def client(services):
    return create_app(services).test_client()


@pytest.fixture
def tokens(services):
    return {
        "global": bearer(services, "admin"),
        "islington": bearer(services, "admin", ISLINGTON),
        "hackney": bearer(services, "admin", HACKNEY),
        "practitioner": bearer(services, "practitioner", ISLINGTON),
    }


@pytest.fixture
def receiver(tmp_path):
    with HttpsReceiver(tmp_path / "tls") as running:
        yield running


def _https(receiver, secret=SECRET, **settings):
    """The receiver's https adapter, trusting its private CA: a ca_bundle on the relay's disk,
    which a global admin sets (or a borough admin keeps as it was)."""
    return {
        "type": "https",
        "settings": {"url": receiver.url, "ca_bundle": str(receiver.ca_bundle), **settings},
        "secrets": {"bearer_token": secret},
    }


def _refusals(services):
    return [d for _, action, d in audit_actions(services.store) if action == "access_refused"]


def _audited(services, action):
    return [d for _, a, d in audit_actions(services.store) if a == action]


def test_anyone_with_a_token_reads_the_register_and_one_authority_in_full(
    services, client, tokens, tmp_path
):
    borough = KeyRing.from_file(tmp_path / "islington.pem", create=True)
    services.store.organisations.set_adapter(
        ISLINGTON, "directory", {"path": str(tmp_path / "in")}, {}
    )
    services.store.organisations.edit(ISLINGTON, {"jwks": borough.jwks()}, by=OPERATOR)
    client.put(
        f"/api/v1/authorities/{ISLINGTON}/publishers/islington-mosaic", headers=tokens["islington"]
    )

    listed = client.get("/api/v1/authorities", headers=tokens["practitioner"])
    assert listed.status_code == 200
    rows = {row["code"]: row for row in listed.get_json()}
    assert len(rows) == 33
    assert rows[ISLINGTON] == {
        "code": ISLINGTON,
        "name": "Islington",
        "kind": "local_authority",
        "adapter_type": "directory",
    }
    assert rows[HACKNEY]["adapter_type"] is None

    shown = client.get(f"/api/v1/authorities/{ISLINGTON}", headers=tokens["practitioner"])
    assert shown.get_json() == {
        **rows[ISLINGTON],
        "jwks": borough.jwks(),
        "publishers": ["islington-mosaic"],
        "adapter_configured": True,
    }
    assert (
        client.get("/api/v1/authorities/E09999999", headers=tokens["practitioner"]).status_code
        == 404
    )


def test_a_global_admin_adds_an_organisation_that_can_then_receive_transfers(
    services, client, tokens
):
    body = {"code": "RQX", "name": "Homerton Healthcare NHS FT", "kind": "health"}
    added = client.post("/api/v1/authorities", json=body, headers=tokens["global"])
    assert added.status_code == 201
    assert added.get_json() == {
        **body,
        "jwks": None,
        "publishers": [],
        "adapter_configured": False,
        "adapter_type": None,
    }
    [audit] = _audited(services, "authority_added")
    assert audit["authority"] == "RQX" and audit["by"]["role"] == "admin"
    assert audit["by"]["authority"] is None

    again = client.post("/api/v1/authorities", json=body, headers=tokens["global"])
    assert again.status_code == 409 and "exists already" in again.get_json()["detail"]

    event = examples.routine("to-homerton", to="RQX")
    received = services.relay.receive(examples.encode(event), sender=EMBEDDED)
    assert (received.rejection, received.state) == (None, "awaiting_judgement"), (
        "the relay knows the new organisation; no ISP covers it, so it needs a judgement"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "rqx", "name": "Lower case", "kind": "health"}, "code"),
        ({"code": "E09000012\n", "name": "Trailing newline", "kind": "health"}, "code"),
        ({"code": "RQX", "name": "  ", "kind": "health"}, "name"),
        ({"code": "RQX", "name": "A hospital", "kind": "hospital"}, "kind"),
        ({"code": "RQX", "name": "A hospital", "kind": "health", "jwks": {"keys": 1}}, "jwks"),
    ],
)
def test_adding_an_organisation_names_the_field_at_fault(client, tokens, body, field):
    response = client.post("/api/v1/authorities", json=body, headers=tokens["global"])
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]


def test_only_a_global_admin_adds_or_renames_and_the_refusal_is_audited(services, client, tokens):
    body = {"code": "MPS", "name": "Metropolitan Police", "kind": "police"}
    assert (
        client.post("/api/v1/authorities", json=body, headers=tokens["islington"]).status_code
        == 403
    )
    renamed = client.patch(
        f"/api/v1/authorities/{ISLINGTON}", json={"name": "Islington!"}, headers=tokens["islington"]
    )
    assert renamed.status_code == 403
    assert [r["path"] for r in _refusals(services)] == [
        "/api/v1/authorities",
        f"/api/v1/authorities/{ISLINGTON}",
    ]
    assert (
        client.get(f"/api/v1/authorities/{ISLINGTON}", headers=tokens["global"]).get_json()["name"]
        == "Islington"
    )

    ok = client.patch(
        f"/api/v1/authorities/{ISLINGTON}",
        json={"name": "London Borough of Islington"},
        headers=tokens["global"],
    )
    assert ok.status_code == 200 and ok.get_json()["name"] == "London Borough of Islington"
    [edit] = _audited(services, "authority_edited")
    assert edit["changed"] == ["name"] and edit["by"]["authority"] is None


def test_the_api_document_says_only_a_global_admin_adds_an_organisation(client):
    # A borough engineer reads who may call what from the document: "Roles: admin" for a call
    # that refuses every borough's admin sends them to a 403 the document said would not come.
    document = client.get("/openapi.json").get_json()
    adding = document["paths"]["/api/v1/authorities"]["post"]["description"]
    assert adding.endswith("Roles: a global admin only.")


def test_an_authoritys_admin_sets_its_receipt_keys_but_never_a_private_key(
    services, client, tokens, tmp_path
):
    borough = KeyRing.from_file(tmp_path / "islington.pem", create=True)
    url = f"/api/v1/authorities/{ISLINGTON}"
    private = {"keys": [OKPKey.generate_key("Ed25519").as_dict(private=True)]}

    refused = client.patch(url, json={"jwks": private}, headers=tokens["islington"])
    assert refused.status_code == 422
    assert "private" in refused.get_json()["errors"]["jwks"][0]
    assert '"d"' not in refused.get_data(as_text=True)

    ok = client.patch(url, json={"jwks": borough.jwks()}, headers=tokens["islington"])
    assert ok.status_code == 200
    assert [k["kid"] for k in ok.get_json()["jwks"]["keys"]] == [borough.kid]
    assert "d" not in ok.get_json()["jwks"]["keys"][0]
    assert services.store.authority_keys(ISLINGTON) == ok.get_json()["jwks"]

    other = client.patch(url, json={"jwks": borough.jwks()}, headers=tokens["hackney"])
    assert other.status_code == 403

    cleared = client.patch(url, json={"jwks": None}, headers=tokens["islington"])
    assert cleared.get_json()["jwks"] is None
    assert [e["kids"] for e in _audited(services, "authority_edited")] == [[borough.kid], []]


def test_an_empty_edit_is_refused(client, tokens):
    response = client.patch(f"/api/v1/authorities/{ISLINGTON}", json={}, headers=tokens["global"])
    assert response.status_code == 422


def test_a_broker_user_is_mapped_to_one_authority_and_cannot_be_taken_by_another(
    services, client, tokens
):
    url = f"/api/v1/authorities/{HACKNEY}/publishers/hackney-mosaic"
    mapped = client.put(url, headers=tokens["hackney"])
    assert mapped.status_code == 200 and mapped.get_json()["publishers"] == ["hackney-mosaic"]
    assert broker_publisher(services.store, "hackney-mosaic") == HACKNEY

    taken = client.put(
        f"/api/v1/authorities/{ISLINGTON}/publishers/hackney-mosaic", headers=tokens["islington"]
    )
    assert taken.status_code == 409
    assert broker_publisher(services.store, "hackney-mosaic") == HACKNEY
    assert client.delete(url, headers=tokens["islington"]).status_code == 403

    bad = client.put(f"/api/v1/authorities/{HACKNEY}/publishers/a%20b", headers=tokens["hackney"])
    assert bad.status_code == 422 and "broker_user" in bad.get_json()["errors"]

    assert client.delete(url, headers=tokens["hackney"]).status_code == 204
    assert broker_publisher(services.store, "hackney-mosaic") is None
    assert client.delete(url, headers=tokens["hackney"]).status_code == 404
    assert [d["by"]["authority"] for d in _audited(services, "broker_publisher_removed")] == [
        HACKNEY
    ]


def test_an_adapter_is_set_shown_without_its_secret_and_removed(services, client, tokens, receiver):
    url = f"/api/v1/authorities/{ISLINGTON}/adapter"
    assert client.get(url, headers=tokens["islington"]).status_code == 404

    config = {**_https(receiver, ca_bundle=None), "retry": {"max_attempts": 20}}
    put = client.put(url, json=config, headers=tokens["islington"])
    assert put.status_code == 200
    view = put.get_json()
    assert view["type"] == "https" and view["settings"]["url"] == receiver.url
    assert view["secrets"] == ["bearer_token"] and view["secrets_readable"] is True
    assert view["retry"] == {"max_attempts": 20}
    assert client.get(url, headers=tokens["islington"]).get_json() == view
    [audit] = _audited(services, "adapter_set")
    assert audit["secrets"] == ["bearer_token"] and audit["by"]["authority"] == ISLINGTON

    assert client.delete(url, headers=tokens["islington"]).status_code == 204
    assert client.get(url, headers=tokens["islington"]).status_code == 404
    assert client.delete(url, headers=tokens["islington"]).status_code == 404
    assert [d["adapter_type"] for d in _audited(services, "adapter_removed")] == ["https"]


def test_a_transfer_to_an_authority_without_adapter_waits_in_the_outbox(
    services, client, tokens, receiver
):
    services.store.add_isp(examples.pan_london_isp())
    url = f"/api/v1/authorities/{ISLINGTON}/adapter"
    client.put(url, json=_https(receiver), headers=tokens["global"])
    client.delete(url, headers=tokens["islington"])
    event = examples.routine("after-removal", to=ISLINGTON)
    services.relay.receive(examples.encode(event), sender=EMBEDDED)

    services.deliverer.deliver_due("test")

    view = services.store.transfers.view("after-removal")
    assert view["state"] == "signed" and view["outbox"]["attempts"] == 1
    assert "No adapter is configured" in view["deliveries"][0]["detail"]
    assert receiver.requests == []


def test_a_borough_admin_keeps_the_operators_ca_bundle_but_may_not_change_it(
    services, client, tokens, receiver
):
    url = f"/api/v1/authorities/{ISLINGTON}/adapter"
    assert client.put(url, json=_https(receiver), headers=tokens["islington"]).status_code == 403
    assert client.put(url, json=_https(receiver), headers=tokens["global"]).status_code == 200

    rotated = client.put(
        url, json=_https(receiver, secret="rotated-" + SECRET), headers=tokens["islington"]
    )
    assert rotated.status_code == 200, rotated.get_json()
    moved = client.put(
        url, json=_https(receiver, ca_bundle="/etc/shadow"), headers=tokens["islington"]
    )
    assert moved.status_code == 403
    assert "ca_bundle names a place on the relay's own disk" in moved.get_json()["detail"]
    assert services.store.organisations.adapter_setting(ISLINGTON).secrets == {
        "bearer_token": "rotated-" + SECRET
    }


def test_only_a_global_admin_may_have_an_adapter_write_to_the_relays_own_disk(
    services, client, tokens, tmp_path
):
    url = f"/api/v1/authorities/{ISLINGTON}/adapter"
    config = {"type": "directory", "settings": {"path": str(tmp_path / "islington")}}

    refused = client.put(url, json=config, headers=tokens["islington"])
    assert refused.status_code == 403
    assert refused.get_json()["detail"] == (
        "The directory adapter's path names a place on the relay's own disk, which only a "
        "global admin may set: ask the relay's operator."
    )
    assert _refusals(services)[-1]["path"] == url
    assert services.store.organisations.adapter(ISLINGTON) is None

    set_by_operator = client.put(url, json=config, headers=tokens["global"])
    assert set_by_operator.status_code == 200, set_by_operator.get_json()
    assert client.get(url, headers=tokens["islington"]).get_json()["type"] == "directory"


@pytest.mark.parametrize(
    ("config", "errors"),
    [
        (
            {"type": "https", "settings": {"url": "http://example.org/in"}, "secrets": {}},
            {
                "settings": {"url": ["Must be an https:// URL."]},
                "secrets": {"bearer_token": ["Missing data for required field."]},
            },
        ),
        (
            {
                "type": "amqp",
                "settings": {"url": "amqp://u:p@host/", "exchange": "x", "routing_key": "k"},
                "secrets": {"username": "u", "password": "p"},
            },
            {"settings": {"url": ["Must not hold credentials; give them as secrets."]}},
        ),
        (
            {
                "type": "amqp",
                "settings": {"url": "amqp://[broker", "exchange": "x", "routing_key": "k"},
                "secrets": {"username": "u", "password": "p"},
            },
            {
                "settings": {
                    "url": [
                        "Must be an amqp:// or amqps:// URL with a host, and a port (if any) "
                        "from 1 to 65535."
                    ]
                }
            },
        ),
        (
            {
                "type": "https",
                "settings": {"url": "https://caf.islington.example/in"},
                "secrets": {"bearer_token": SECRET},
                "retry": {"max_attempts": 0},
            },
            {
                "retry": {
                    "max_attempts": [
                        "Must be greater than or equal to 1 and less than or equal to 1000."
                    ]
                }
            },
        ),
        ({"type": "pigeon"}, {"type": ["Must be one of: amqp, directory, https."]}),
    ],
)
def test_a_broken_adapter_config_is_422_with_the_fields_at_fault(
    services, client, tokens, config, errors
):
    response = client.put(
        f"/api/v1/authorities/{ISLINGTON}/adapter", json=config, headers=tokens["islington"]
    )
    assert response.status_code == 422
    assert response.get_json()["errors"] == errors
    assert services.store.organisations.adapter(ISLINGTON) is None


def test_a_test_delivery_arrives_signed_and_marked_as_a_test_and_makes_no_transfer(
    services, client, tokens, receiver, tmp_path
):
    borough = KeyRing.from_file(tmp_path / "islington.pem", create=True)
    services.store.organisations.edit(ISLINGTON, {"jwks": borough.jwks()}, by=OPERATOR)

    def signed_receipt(request):
        receipt = {
            "envelope_id": request.headers["X-Caf-Envelope-Id"],
            "sha256": hashlib.sha256(request.body).hexdigest(),
        }
        return 200, {"Content-Type": "application/jose+json"}, borough.sign(receipt).encode()

    receiver.answer = signed_receipt
    client.put(
        f"/api/v1/authorities/{ISLINGTON}/adapter",
        json=_https(receiver),
        headers=tokens["global"],
    )

    response = client.post(
        f"/api/v1/authorities/{ISLINGTON}/adapter/test", headers=tokens["islington"]
    )

    assert response.status_code == 200
    result = response.get_json()
    assert result["delivered"] is True and result["adapter_type"] == "https"
    assert result["detail"] == f"HTTP 200 from {receiver.url}"
    assert result["duration_ms"] >= 0
    assert result["receipt"] == {"verified": True, "kid": borough.kid, "received_at": None}
    [arrived] = receiver.requests
    assert arrived.headers["Authorization"] == f"Bearer {SECRET}"
    assert arrived.headers["X-Caf-Envelope-Id"] == result["test_id"]
    header, payload = verify(arrived.body, client.get("/.well-known/jwks.json").get_json())
    assert header["typ"] == "caf-test+jws" and header["kid"] == services.keyring.kid
    assert payload["test"] is True and payload["test_id"] == result["test_id"]
    assert payload["to"] == {"code": ISLINGTON, "name": "Islington"}
    assert services.store.transfers.counts_by_state() == {}
    [audit] = _audited(services, "adapter_tested")
    assert audit["delivered"] is True and audit["by"]["authority"] == ISLINGTON


def test_a_failed_test_delivery_reports_the_error_and_whether_a_retry_would_help(
    client, tokens, receiver
):
    client.put(
        f"/api/v1/authorities/{ISLINGTON}/adapter",
        json=_https(receiver),
        headers=tokens["global"],
    )
    receiver.respond_with(503, 401)
    url = f"/api/v1/authorities/{ISLINGTON}/adapter/test"

    unavailable = client.post(url, headers=tokens["islington"]).get_json()
    refused = client.post(url, headers=tokens["islington"]).get_json()

    assert (unavailable["delivered"], unavailable["retryable"]) == (False, True)
    assert unavailable["detail"] == f"HTTP 503 Service Unavailable from {receiver.url}"
    assert (refused["delivered"], refused["retryable"]) == (False, False)
    assert "HTTP 401" in refused["detail"]


def test_a_hackney_admin_cannot_touch_islingtons_adapter_and_is_audited(
    services, client, tokens, receiver
):
    url = f"/api/v1/authorities/{ISLINGTON}/adapter"
    client.put(url, json=_https(receiver), headers=tokens["global"])
    hackney = tokens["hackney"]

    attempts = [
        client.get(url, headers=hackney),
        client.put(url, json=_https(receiver, secret="hackney-took-it-over-1234"), headers=hackney),
        client.delete(url, headers=hackney),
        client.post(f"{url}/test", headers=hackney),
    ]

    assert [r.status_code for r in attempts] == [403] * 4
    assert "acts for E09000012, not for E09000019" in attempts[0].get_json()["detail"]
    refusals = _refusals(services)
    assert [(r["method"], r["path"]) for r in refusals] == [
        ("GET", url),
        ("PUT", url),
        ("DELETE", url),
        ("POST", f"{url}/test"),
    ]
    assert {r["caller"]["authority"] for r in refusals} == {HACKNEY}
    assert services.store.organisations.adapter_setting(ISLINGTON).secrets == {
        "bearer_token": SECRET
    }
    assert receiver.requests == []


ENDPOINTS = [
    ("get", "/api/v1/authorities", None),
    ("post", "/api/v1/authorities", "global"),
    ("get", f"/api/v1/authorities/{ISLINGTON}", None),
    ("patch", f"/api/v1/authorities/{ISLINGTON}", "admin"),
    ("put", f"/api/v1/authorities/{ISLINGTON}/publishers/islington-mosaic", "admin"),
    ("delete", f"/api/v1/authorities/{ISLINGTON}/publishers/islington-mosaic", "admin"),
    ("get", f"/api/v1/authorities/{ISLINGTON}/adapter", "admin"),
    ("put", f"/api/v1/authorities/{ISLINGTON}/adapter", "admin"),
    ("delete", f"/api/v1/authorities/{ISLINGTON}/adapter", "admin"),
    ("post", f"/api/v1/authorities/{ISLINGTON}/adapter/test", "admin"),
]


@pytest.mark.parametrize(("method", "path", "needs"), ENDPOINTS)
def test_every_endpoint_refuses_no_token_the_wrong_role_and_another_authority(
    services, client, tokens, method, path, needs
):
    body = {"jwks": None} if method == "patch" else None
    call = getattr(client, method)
    callers = {"nobody": {}}
    if needs is not None:
        callers["wrong role"] = tokens["practitioner"]
        callers["other authority"] = tokens["hackney"]

    statuses = {who: call(path, json=body, headers=h).status_code for who, h in callers.items()}

    expected = {"nobody": 401, "wrong role": 403, "other authority": 403}
    assert statuses == {who: expected[who] for who in callers}
    assert [(r["method"], r["path"], r["status"]) for r in _refusals(services)] == [
        (method.upper(), path, expected[who]) for who in callers if who != "nobody"
    ], "a 403 is audited; a 401 names no one, and is only logged"


def test_a_known_adapter_secret_appears_nowhere_in_plain_text(
    services, client, tokens, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    url = f"/api/v1/authorities/{ISLINGTON}/adapter"
    islington = tokens["islington"]
    operator = tokens["global"]
    responses = [
        client.put(
            url, json={**_https(receiver), "settings": {"url": "http://x.org"}}, headers=operator
        ),
        client.put(url, json=_https(receiver), headers=operator),
        client.get(url, headers=islington),
        client.get(f"/api/v1/authorities/{ISLINGTON}", headers=islington),
        client.get("/api/v1/authorities", headers=islington),
        client.post(f"{url}/test", headers=islington),
        client.put(url, json=_https(receiver), headers=tokens["hackney"]),
    ]
    receiver.respond_with(500)
    responses.append(client.post(f"{url}/test", headers=islington))
    responses.append(client.get("/openapi.json"))
    assert [r.status_code for r in responses] == [422, 200, 200, 200, 200, 200, 403, 200, 200]
    assert receiver.requests[0].headers["Authorization"] == f"Bearer {SECRET}", "it was used"

    for response in responses:
        assert SECRET not in response.get_data(as_text=True)
    assert caplog.records, "the calls were logged at DEBUG"
    assert SECRET not in caplog.text
    assert all(SECRET not in str(record.__dict__) for record in caplog.records)
    engine = sa.create_engine(services.store.url)
    with engine.connect() as conn:
        dump = [
            str(row)
            for table in tables.Base.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        ]
    engine.dispose()
    assert any("adapter_set" in row for row in dump), "the dump holds the audit"
    assert not [row for row in dump if SECRET in row]
