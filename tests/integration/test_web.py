"""The HTTP API as a case system without AMQP uses it."""

import io
import json
from html.parser import HTMLParser

import pytest
import requests
from jwcrypto import jwk, jws

from contracts.common import OUT_OF_UTC_RANGE
from service.relay import Rejection
from service.web import create_app
from tests.support import examples, judgements, malformed
from tests.support import isps as isps_support
from tests.support.served import chunked, serving
from tests.support.store_reads import audit_actions, has_transfer
from tests.support.tokens import bearer, headers_for, issue, token_name

HACKNEY, NEWHAM = "E09000012", "E09000025"


@pytest.fixture
def publisher(services):
    """A Hackney case system's token: the sender of the routine example events."""
    return issue(services, "publisher", HACKNEY)


@pytest.fixture
def auth(publisher):
    return headers_for(publisher)


def _sent_by(publisher) -> dict[str, str]:
    """How the audit names a Hackney publisher's token as the sender of an event."""
    return {
        "via": "http",
        "token_id": publisher.token_id,
        "token_name": token_name("publisher", HACKNEY),
    }


@pytest.fixture
def client(services, tmp_path):
    services.store.add_isp(examples.pan_london_isp())
    services.store.organisations.set_adapter(
        "E09000019", "directory", {"path": str(tmp_path / "islington")}, {}
    )
    return create_app(services).test_client()


def test_an_event_posted_over_http_is_signed_then_delivered_from_the_outbox(
    auth, services, client, tmp_path
):
    event = examples.event(examples.ROUTINE_WITH_ISP)
    response = client.post("/api/v1/events", data=examples.encode(event), headers=auth)
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "signed"
    assert body["outbox"]["attempts"] == 0
    assert body["decision"]["isp"] == {"id": "pan-london-caf", "version": 1}

    assert services.deliverer.deliver_due("test") == 1
    after = client.get(f"/api/v1/transfers/{event['id']}", headers=auth).get_json()
    assert after["state"] == "delivered" and after["outbox"] is None
    [delivered] = (tmp_path / "islington").glob("*.json")
    assert delivered.name == f"{body['envelope']['envelope_id']}.json"
    token = jws.JWS()
    token.deserialize(delivered.read_text())
    token.verify(jwk.JWKSet.from_json(client.get("/.well-known/jwks.json").get_data(as_text=True)))
    assert json.loads(token.payload)["event_id"] == event["id"]


def test_posting_the_same_event_again_says_it_is_a_duplicate_and_it_is_sent_once(
    auth, services, client, tmp_path
):
    body = examples.encode(examples.event(examples.ROUTINE_WITH_ISP))
    client.post("/api/v1/events", data=body, headers=auth)
    again = client.post("/api/v1/events", data=body, headers=auth)
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert services.deliverer.deliver_due("test") == 1
    assert len(list((tmp_path / "islington").glob("*.json"))) == 1


def test_another_authority_reusing_an_event_id_is_refused_and_shown_nothing_of_the_first(
    auth, services, client, tmp_path
):
    first = examples.event(examples.ROUTINE_WITH_ISP)
    client.post("/api/v1/events", data=examples.encode(first), headers=auth)
    reused = examples.event(examples.ROUTINE_WITH_ISP, subject="CAF-NH-2026-0001")
    reused["data"]["from_authority"] = NEWHAM
    newham = bearer(services, "publisher", NEWHAM)
    response = client.post("/api/v1/events", data=examples.encode(reused), headers=newham)
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["rejection"] == "id_conflict"
    assert "unique across all publishers" in problem["detail"]
    assert first["subject"] not in response.get_data(as_text=True)
    assert services.deliverer.deliver_due("test") == 1
    assert len(list((tmp_path / "islington").glob("*.json"))) == 1
    assert services.store.transfers.view(first["id"])["case_reference"] == first["subject"]


def test_a_parked_transfer_is_visible_to_its_sender_with_the_reason(auth, services, client):
    auth = bearer(services, "publisher", NEWHAM)
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    client.post("/api/v1/events", data=examples.encode(event), headers=auth)
    response = client.get(f"/api/v1/transfers/{event['id']}", headers=auth)
    assert response.status_code == 200
    view = response.get_json()
    assert view["state"] == "awaiting_judgement"
    assert "judgement" in view["decision"]["reason"]
    assert view["decision"]["considered"] == [
        {"isp_id": "pan-london-caf", "version": 1, "finding": "purpose_not_covered"}
    ]
    assert "Okafor" not in response.get_data(as_text=True), "no child's data in the status view"


STATUS_BY_REJECTION = {
    Rejection.NOT_JSON: 400,
    Rejection.CONTRACT: 422,
    Rejection.UNKNOWN_AUTHORITY: 422,
    Rejection.OVERSIZED: 413,
}


@pytest.mark.parametrize(("body", "rejection", "reason"), malformed.BAD_INPUT)
def test_bad_input_gets_a_problem_response_naming_its_rejection_and_is_audited(
    publisher, auth, services, client, body, rejection, reason
):
    response = client.post("/api/v1/events", data=body, headers=auth)
    assert response.status_code == STATUS_BY_REJECTION[rejection]
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["rejection"] == rejection.value and reason in problem["detail"]
    audited = [d for _, action, d in audit_actions(services.store) if action == "rejected"]
    sent_by = _sent_by(publisher)
    assert audited == [
        {"rejection": rejection.value, "reason": problem["detail"], "sent_by": sent_by}
    ]


@pytest.fixture
def served(client):
    with serving(client.application) as url:
        yield url


@pytest.mark.parametrize("size", [262_144, 262_145, 300_000])
def test_a_chunked_body_is_refused_as_oversized_only_past_the_limit(
    publisher, auth, services, served, size
):
    event = examples.event(examples.ROUTINE_WITH_ISP)
    text = examples.encode(event)
    body = text[:-1] + b" " * (size - len(text)) + b"}"
    response = requests.post(
        f"{served}/api/v1/events", data=chunked(body), headers=auth, timeout=30
    )
    rejected = [d for _, action, d in audit_actions(services.store) if action == "rejected"]
    if size <= 262_144:
        assert response.status_code == 202, response.text
        assert rejected == []
        return
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail == "Event is longer than the limit; the limit is 262144."
    sent_by = _sent_by(publisher)
    assert rejected == [{"rejection": "oversized", "reason": detail, "sent_by": sent_by}]


def test_a_contract_violation_names_the_fields_at_fault(auth, client):
    response = client.post(
        "/api/v1/events", data=examples.encode({"specversion": "1.0"}), headers=auth
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]["id"] == ["Missing data for required field."]


def test_an_event_dated_with_no_time_in_utc_is_refused_naming_each_field_and_not_stored(
    services, client
):
    """Year 1 ahead of UTC is year 0 in UTC, year 9999 behind it year 10000: signed and sent,
    such a moment would break a receiver's date library."""
    event = examples.event(examples.AD_HOC_WITH_JUDGEMENT, time="0001-01-01T00:00:00+01:00")
    event["data"]["sharing"]["judgement"]["decided_at"] = "9999-12-31T23:30:00-01:00"
    sender = bearer(services, "publisher", event["data"]["from_authority"])

    response = client.post("/api/v1/events", data=examples.encode(event), headers=sender)

    assert response.status_code == 422, response.get_data(as_text=True)
    problem = response.get_json()
    assert problem["rejection"] == Rejection.CONTRACT.value
    assert problem["errors"] == {
        "time": [OUT_OF_UTC_RANGE],
        "data": {"sharing": {"judgement": {"decided_at": [OUT_OF_UTC_RANGE]}}},
    }
    assert not has_transfer(services.store, event["id"])
    rejected = [d for _, action, d in audit_actions(services.store) if action == "rejected"]
    assert [d["rejection"] for d in rejected] == [Rejection.CONTRACT.value]


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="caf-relay"'),
        ({"Authorization": "Bearer wrong"}, 'Bearer realm="caf-relay", error="invalid_token"'),
        ({"Authorization": "cafr_not_a_bearer"}, 'Bearer realm="caf-relay"'),
    ],
    ids=["none", "unknown", "no-scheme"],
)
def test_the_api_refuses_calls_without_the_token(client, headers, challenge):
    """RFC 6750: a token presented and not accepted is an ``invalid_token``; none, no error."""
    for method, path in (("post", "/api/v1/events"), ("get", "/api/v1/transfers/x")):
        response = getattr(client, method)(path, headers=headers, data=b"{}")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == challenge


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/isps", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("GET", "/api/v1/events", {"OPTIONS", "POST"}),
        ("POST", "/metrics", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_a_method_the_url_does_not_take_is_a_405_problem_saying_which_it_does(
    services, client, method, path, allowed
):
    """RFC 9110 requires a 405 to carry Allow: without it a client has only the status."""
    response = client.open(path, method=method, headers=bearer(services, "admin"))
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert set(response.headers["Allow"].split(", ")) == allowed


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"authority": "E09000012",}', "Expecting property name enclosed in double quotes"),
        (b'{"case_reference": "CAF-\xff"}', "can't decode byte 0xff in position 24"),
    ],
    ids=["broken", "not-utf-8"],
)
def test_a_json_body_that_is_not_json_is_a_400_saying_where_it_breaks(services, client, body, why):
    response = client.post(
        "/api/v1/audit/search",
        data=body,
        content_type="application/json",
        headers=bearer(services, "auditor", HACKNEY),
    )
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("The body is not JSON: ")
    assert why in response.get_json()["detail"]
    assert response.get_json()["errors"] == {"_schema": ["Invalid JSON body."]}


@pytest.mark.parametrize(
    ("method", "path", "named"),
    [
        ("GET", "/api/v1/isps?status=active", "status"),
        ("GET", "/api/v1/authorities?code=E09000012", "code"),
        ("GET", "/api/v1/transfers/no-such-event?x=1", "x"),
        ("GET", "/api/v1/audit/verify?from=1", "from"),
    ],
)
def test_a_parameter_given_to_a_call_that_takes_none_is_a_422_naming_it(
    services, client, method, path, named
):
    """Ignored, ``?status=active`` would list every ISP, suspended ones too, as though filtered:
    a call taking no query parameters refuses one as a call taking some refuses a misspelt one."""
    response = client.open(path, method=method, headers=bearer(services, "admin"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"] == {"query": {named: ["Unknown field."]}}


def test_an_event_sent_with_a_parameter_is_refused_not_stored(services, client, auth):
    """A publisher trying ``?dry_run=1`` learns that there is no such thing before the event is
    stored and relayed, rather than after."""
    event = examples.routine("dry-run")
    response = client.post("/api/v1/events?dry_run=1", data=examples.encode(event), headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"] == {"query": {"dry_run": ["Unknown field."]}}
    assert not has_transfer(services.store, event["id"])


def test_unknown_transfer_is_a_404_with_a_message(auth, client):
    response = client.get("/api/v1/transfers/no-such-event", headers=auth)
    assert response.status_code == 404
    assert "no-such-event" in response.get_json()["detail"]


def test_public_keys_and_health_need_no_token(client, services):
    keys = client.get("/.well-known/jwks.json")
    assert keys.status_code == 200
    assert keys.get_json()["keys"][0]["kid"] == services.keyring.kid
    assert client.get("/healthz").get_json() == {"status": "ok"}


class _ExternalFiles(HTMLParser):
    """Each script and stylesheet a page loads from another origin, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        address = named.get("src") if tag == "script" else named.get("href")
        if tag in ("script", "link") and address and address.startswith("https://"):
            self.found.append(named)


def test_the_api_page_loads_only_files_the_browser_can_check_against_a_digest(client):
    """An admin pastes a token into /docs: a changed file on the CDN must not run there."""
    page = client.get("/docs")
    assert page.status_code == 200
    files = _ExternalFiles()
    files.feed(page.get_data(as_text=True))
    assert len(files.found) == 3
    for file in files.found:
        assert file["integrity"].startswith("sha384-") and len(file["integrity"]) == 71
        assert file["crossorigin"] == "anonymous"


def test_a_publisher_may_send_only_from_its_own_authority(services, client, auth):
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)  # from Havering
    response = client.post("/api/v1/events", data=examples.encode(event), headers=auth)
    assert response.status_code == 403
    assert "may not send for E09000025" in response.get_json()["detail"]
    assert services.store.transfers.view(event["id"]) is None
    refusals = [d for _, a, d in audit_actions(services.store) if a == "access_refused"]
    assert refusals[-1]["path"] == "/api/v1/events"
    assert refusals[-1]["caller"]["authority"] == HACKNEY


def test_a_global_admin_cannot_publish_for_an_authority(services, client):
    event = examples.event(examples.ROUTINE_WITH_ISP)
    response = client.post(
        "/api/v1/events", data=examples.encode(event), headers=bearer(services, "admin")
    )
    assert response.status_code == 403
    detail = response.get_json()["detail"]
    assert detail == "A global admin token may not do this; it needs the role publisher."


@pytest.mark.parametrize(
    ("role", "refusal"),
    [
        ("admin", "An admin token may not do this"),
        ("auditor", "An auditor token may not do this"),
        ("practitioner", "A practitioner token may not do this"),
    ],
)
def test_a_refusal_names_the_callers_role_in_plain_english(services, client, role, refusal):
    event = examples.event(examples.ROUTINE_WITH_ISP)
    headers = bearer(services, role, HACKNEY)
    response = client.post("/api/v1/events", data=examples.encode(event), headers=headers)
    assert response.status_code == 403
    assert response.get_json()["detail"] == f"{refusal}; it needs the role publisher."
    assert services.store.transfers.view(event["id"]) is None
    assert "Roles: publisher." in client.get("/openapi.json").get_data(as_text=True)


@pytest.mark.parametrize(
    "url",
    ["/api/v1/transfers?authority=E09000012&after=t%00", "/api/v1/transfers/t%00x"],
    ids=["query", "path"],
)
def test_a_nul_in_the_url_is_a_clear_400_not_a_database_error(services, client, url):
    response = client.get(url, headers=bearer(services, "admin"))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["detail"] == (
        "The URL holds the NUL character (%00), which no valid request has."
    )


@pytest.mark.parametrize(
    ("path", "body", "why"),
    [
        (
            "/api/v1/isps",
            json.dumps({**examples.pan_london_isp(), "title": "Pan\u0000London"}),
            "a string holds the NUL character.",
        ),
        (
            "/api/v1/authorities",
            '{"code": "RF4", "name": "Barking \\ud800 Trust", "kind": "health"}',
            "a string holds an unpaired UTF-16 surrogate escape.",
        ),
        (
            "/api/v1/audit/search",
            '{"authority": "E09000012", "case_reference": "CAF\\u0000"}',
            "a string holds the NUL character.",
        ),
    ],
    ids=["isp-nul", "authority-surrogate", "search-nul"],
)
def test_a_json_body_the_store_could_not_hold_is_a_422_naming_why(
    services, client, path, body, why
):
    response = client.post(
        path, data=body, content_type="application/json", headers=bearer(services, "admin")
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"] == {"_schema": [f"Not storable: {why}"]}
    assert "RF4" not in services.store.authorities()
    assert services.store.isps.latest()["pan-london-caf"].document == examples.pan_london_isp()


LONG_NUMBER = '{"id": ' + "1" * 5000 + "}"
DEEP = "[" * 100_000
PARKED = examples.event(examples.ROUTINE_WITHOUT_BASIS)


def _post_beside_a_parked_transfer(services, client, path, role, body):
    """``body`` posted to ``path`` by ``role``, once PARKED waits for a judgement (which a
    practitioner of its sender may record)."""
    client.post(
        "/api/v1/events",
        data=examples.encode(PARKED),
        headers=bearer(services, "publisher", NEWHAM),
    )
    response = client.post(
        path,
        data=body,
        content_type="application/json",
        headers=bearer(services, role, NEWHAM if role == "practitioner" else None),
    )
    return response


@pytest.mark.parametrize(
    ("path", "role", "body", "why"),
    [
        ("/api/v1/isps", "admin", LONG_NUMBER, "a number has more than 4300 digits."),
        ("/api/v1/audit/search", "admin", DEEP, "nested too deeply."),
        (f"/api/v1/transfers/{PARKED['id']}/judgement", "practitioner", DEEP, "nested too deeply."),
    ],
    ids=["isp-long-number", "search-deep", "judgement-deep"],
)
def test_json_too_deep_or_with_too_long_a_number_to_read_is_a_400_naming_why(
    services, client, path, role, body, why
):
    """JSON Python gives up on (nested too deeply) or cannot convert (too long a number): it
    was a server error."""
    response = _post_beside_a_parked_transfer(services, client, path, role, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["detail"] == f"The JSON body cannot be read: {why}"
    assert services.store.transfers.view(PARKED["id"])["state"] == "awaiting_judgement"


def _given_twice(document: dict, key: str, first: object) -> str:
    """``document`` as JSON, its top-level ``key`` given twice: first as ``first``, then as
    ``document`` has it (JSON allows it; read as the last, ``first`` would go unseen)."""
    rest = json.dumps(document)[1:]
    return "{" + json.dumps(key) + ": " + json.dumps(first) + ", " + rest


@pytest.mark.parametrize(
    ("path", "role", "body", "key"),
    [
        (
            "/api/v1/isps",
            "admin",
            _given_twice(
                {**examples.pan_london_isp(), "id": "twice"}, "data_categories", ["child_identity"]
            ),
            "data_categories",
        ),
        (
            "/api/v1/audit/search",
            "admin",
            _given_twice({"authority": NEWHAM}, "authority", HACKNEY),
            "authority",
        ),
        (
            f"/api/v1/transfers/{PARKED['id']}/judgement",
            "practitioner",
            _given_twice(judgements.share(), "decision", "not_share"),
            "decision",
        ),
    ],
    ids=["isp", "search", "judgement"],
)
def test_a_json_body_giving_a_field_twice_is_a_400_not_read_as_the_last(
    services, client, path, role, body, key
):
    """Read as the last value, a field pasted twice (or written twice by a client) would record
    or search for what the caller never saw together: a decision not to share turned into one
    to share, categories an ISP's parties did not agree."""
    response = _post_beside_a_parked_transfer(services, client, path, role, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["detail"] == (
        f"The JSON body gives a field twice: {key!r} given twice in one object."
    )
    assert services.store.transfers.view(PARKED["id"])["state"] == "awaiting_judgement"
    assert "twice" not in services.store.isps.latest()


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/transfers?authority=E09000012&since=0001-01-01T00:00:00%2B01:00", 422),
        ("/api/v1/audit?until=9999-12-31T23:30:00-01:00", 400),
    ],
    ids=["transfers", "audit"],
)
def test_a_moment_with_no_time_in_utc_is_refused_not_a_database_error(
    services, client, url, status
):
    response = client.get(url, headers=bearer(services, "admin"))
    assert response.status_code == status, response.get_data(as_text=True)
    assert "Out of range: it has no time in UTC." in response.get_data(as_text=True)


def test_an_isp_file_named_with_a_nul_is_refused_not_a_database_error(services, client):
    response = client.post(
        "/api/v1/isps/import",
        data={"file": (io.BytesIO(isps_support.YAML.encode()), "isp\x00.yaml")},
        headers=bearer(services, "admin"),
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["detail"] == "Not storable: a string holds the NUL character."
    assert response.get_json()["errors"] == {"source": ["a string holds the NUL character."]}
    assert services.store.isps.versions("newham-tower-hamlets") == []


def test_an_isp_file_holding_a_nul_is_refused_whole(services, client):
    yaml_body = isps_support.YAML.replace(
        "title: Newham and Tower Hamlets safeguarding ISP", 'title: "Newham\\0Tower Hamlets"'
    )
    response = client.post(
        "/api/v1/isps/import",
        data=yaml_body,
        content_type="application/yaml",
        headers=bearer(services, "admin"),
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["detail"] == ("Not storable: a string holds the NUL character.")
    assert "newham-tower-hamlets" not in services.store.isps.latest()


def test_the_audit_names_the_token_that_sent_an_accepted_event_never_its_secret(services, client):
    sent_with = issue(services, "publisher", HACKNEY)
    event = examples.event(examples.ROUTINE_WITH_ISP)
    response = client.post(
        "/api/v1/events", data=examples.encode(event), headers=headers_for(sent_with)
    )
    assert response.status_code == 202

    [arrival] = [e for e in response.get_json()["timeline"] if e["action"] == "received"]
    assert arrival["detail"]["sent_by"] == _sent_by(sent_with)
    auditor = bearer(services, "auditor", HACKNEY)
    page = client.get(f"/api/v1/audit?case_reference={event['subject']}", headers=auditor)
    [received] = [r for r in page.get_json()["records"] if r["action"] == "received"]
    assert received["detail"]["sent_by"] == _sent_by(sent_with)
    assert sent_with.secret not in json.dumps(audit_actions(services.store))


def test_the_audit_names_the_token_that_sent_a_duplicate_or_a_refused_event(services, client):
    """Who sent it again, or sent what was refused, as the arrival record names its sender."""
    first, again = issue(services, "publisher", HACKNEY), issue(services, "publisher", HACKNEY)
    event = examples.event(examples.ROUTINE_WITH_ISP)
    for sent_with, status in ((first, 202), (again, 200)):
        response = client.post(
            "/api/v1/events", data=examples.encode(event), headers=headers_for(sent_with)
        )
        assert response.status_code == status
    without_subject = examples.event(examples.ROUTINE_WITH_ISP, id="no-subject")
    del without_subject["subject"]
    refused = client.post(
        "/api/v1/events", data=examples.encode(without_subject), headers=headers_for(again)
    )
    assert refused.status_code == 422

    [duplicate] = [d for _, a, d in audit_actions(services.store, event["id"]) if a == "duplicate"]
    assert duplicate == {"reason": "Event id already received.", "sent_by": _sent_by(again)}
    [rejected] = [d for _, a, d in audit_actions(services.store, "no-subject") if a == "rejected"]
    assert rejected["sent_by"] == _sent_by(again)
