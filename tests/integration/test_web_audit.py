"""The audit API as an auditor and a subject access officer use it."""

import pytest
import sqlalchemy as sa

from service.senders import EMBEDDED
from service.web import create_app
from tests.support import examples
from tests.support.children import child, shared_under_the_isp, transfer_of
from tests.support.store_reads import audit_actions
from tests.support.tokens import bearer

HACKNEY, ISLINGTON, HAVERING, CAMDEN = "E09000012", "E09000019", "E09000025", "E09000007"


@pytest.fixture
def auth(services):
    return bearer(services, "admin")


@pytest.fixture
def client(services):
    """Hackney sent Islington three children's cases; Havering's case of child 1 is parked."""
    shared_under_the_isp(services, "web", 3)
    parked = transfer_of(examples.ROUTINE_WITHOUT_BASIS, "web-parked", child(1))
    assert services.relay.receive(examples.encode(parked), sender=EMBEDDED).state == (
        "awaiting_judgement"
    )
    return create_app(services).test_client()


def _child_search(n: int, **filters):
    return {"nhs_number": child(n)["nhs_number"], **filters}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/audit", None),
        ("POST", "/api/v1/audit/search", {}),
        ("GET", "/api/v1/audit/verify", None),
        ("POST", "/api/v1/subject-access", {"nhs_number": "9000000001"}),
    ],
)
def test_the_audit_api_needs_the_token(client, method, path, body):
    response = client.open(path, method=method, json=body)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    wrong = client.open(path, method=method, json=body, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401


def test_verify_reports_an_intact_chain_then_the_first_bad_record(auth, services, client):
    body = client.get("/api/v1/audit/verify", headers=auth).get_json()
    # 3 signed transfers of 4 records each, a parked one of 3, the ISP, the admin's token.
    assert body["intact"] is True and body["records"] == 17
    assert body["first_bad_record"] is None

    engine = sa.create_engine(services.store.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_records WHERE seq = 4"))
    engine.dispose()
    body = client.get("/api/v1/audit/verify", headers=auth).get_json()
    assert body["intact"] is False
    assert body["first_bad_record"]["seq"] == 4
    assert body["first_bad_record"]["damage"] == "deleted"


def test_an_auditor_verifies_the_whole_chain(services, client):
    auditor = bearer(services, "auditor", CAMDEN)
    body = client.get("/api/v1/audit/verify", headers=auditor).get_json()
    assert body["intact"] is True and body["records"] == 17


def test_a_search_by_child_is_a_post_paged_by_the_cursor(auth, client):
    url = "/api/v1/audit/search"
    first = client.post(url, json=_child_search(1, page_size=3), headers=auth).get_json()
    assert [r["action"] for r in first["records"]] == ["received", "basis_decided", "minimised"]
    assert {r["event_id"] for r in first["records"]} == {"web-1"}
    following = _child_search(1, page_size=3, after=first["next_after"])
    second = client.post(url, json=following, headers=auth).get_json()
    assert [(r["event_id"], r["action"]) for r in second["records"]] == [
        ("web-1", "signed"),
        ("web-parked", "received"),
        ("web-parked", "basis_decided"),
    ]


def test_a_child_named_in_a_url_is_refused_naming_the_field(auth, client):
    response = client.get(f"/api/v1/audit?nhs_number={child(1)['nhs_number']}", headers=auth)
    assert response.status_code == 422
    assert response.get_json()["errors"]["query"] == {"nhs_number": ["Unknown field."]}


def test_plain_filters_still_work_in_the_query_string_with_a_next_link(auth, client):
    first = client.get("/api/v1/audit?case_reference=CAF-web-2&page_size=3", headers=auth)
    body = first.get_json()
    assert [r["action"] for r in body["records"]] == ["received", "basis_decided", "minimised"]
    second = client.get(body["next"], headers=auth).get_json()
    assert [r["action"] for r in second["records"]] == ["signed"]
    assert second["next"] is None and second["next_after"] is None


def test_a_cursor_past_any_64_bit_seq_is_an_empty_last_page_not_a_database_error(auth, client):
    response = client.get(f"/api/v1/audit?after={2**100}", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["records"], body["next_after"]) == ([], None)


def test_a_bad_search_parameter_is_a_400_saying_which(auth, client):
    response = client.get("/api/v1/audit?basis=hunch", headers=auth)
    assert response.status_code == 400
    assert "basis" in response.get_json()["detail"]
    response = client.post("/api/v1/audit/search", json={"since": "Tuesday"}, headers=auth)
    assert response.status_code == 400
    assert "since" in response.get_json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("GET", "/api/v1/audit", {"page_size": "501"}, None),
        ("POST", "/api/v1/audit/search", None, {"page_size": 501}),
    ],
)
def test_a_page_larger_than_the_most_is_a_422_naming_it_not_a_shorter_page(
    auth, client, method, path, query, body
):
    """Cut to 500 without a word, a caller asking for 501 at a time would take a page short
    of what it asked for as the records there are."""
    response = client.open(path, method=method, query_string=query, json=body, headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["errors"]
    why = (errors["query"] if query else errors)["page_size"]
    assert why == ["Must be greater than or equal to 1 and less than or equal to 500."]


def test_an_auditor_reads_only_its_own_authoritys_transfers(services, client):
    islington = bearer(services, "auditor", ISLINGTON)
    body = client.post(
        "/api/v1/audit/search", json={"page_size": 500}, headers=islington
    ).get_json()
    assert {r["event_id"] for r in body["records"]} == {"web-0", "web-1", "web-2"}

    havering = bearer(services, "auditor", HAVERING)
    body = client.post("/api/v1/audit/search", json=_child_search(1), headers=havering).get_json()
    assert {r["event_id"] for r in body["records"]} == {"web-parked"}


def test_a_global_admin_reads_every_record(auth, client):
    body = client.get("/api/v1/audit?page_size=500", headers=auth).get_json()
    assert {r["event_id"] for r in body["records"]} == {
        None,  # the ISP recorded, the token created
        "web-0",
        "web-1",
        "web-2",
        "web-parked",
    }


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/audit"), ("POST", "/api/v1/audit/search")]
)
def test_an_auditor_asking_for_another_authority_is_refused_and_audited(
    services, client, method, path
):
    islington = bearer(services, "auditor", ISLINGTON)
    if method == "GET":
        response = client.get(f"{path}?authority={HAVERING}", headers=islington)
    else:
        response = client.post(path, json={"authority": HAVERING}, headers=islington)
    assert response.status_code == 403
    assert HAVERING in response.get_json()["detail"]
    refused = [d for _, action, d in audit_actions(services.store) if action == "access_refused"]
    assert refused[-1]["path"] == path
    assert refused[-1]["caller"]["authority"] == ISLINGTON


def test_subject_access_is_json_or_a_printable_page(auth, client):
    url, body = "/api/v1/subject-access", {"nhs_number": child(2)["nhs_number"]}
    export = client.post(url, json=body, headers=auth).get_json()
    assert [t["event_id"] for t in export["transfers"]] == ["web-2"]
    page = client.post(url, json=body, headers={**auth, "Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Hackney to Islington" in page.get_data(as_text=True)
    missing = client.post(url, json={}, headers=auth)
    assert missing.status_code == 400 and "Name the child" in missing.get_json()["detail"]
    named = {"given_name": "Amara", "family_name": "Okafor", "date_of_birth": "2015-03-01"}
    by_name = client.post(url, json=named, headers=auth)
    assert by_name.status_code == 422
    assert by_name.get_json()["errors"]["given_name"] == ["Unknown field."]


def test_api_answers_are_not_cached_sniffed_or_framed(auth, client):
    """An export names a child's transfers and the practitioners who decided them: no browser
    or proxy keeps a copy, and the printable page runs no script and sits in no other page."""
    url, body = "/api/v1/subject-access", {"nhs_number": child(2)["nhs_number"]}
    for accept in ("application/json", "text/html"):
        answer = client.post(url, json=body, headers={**auth, "Accept": accept})
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store", accept
        assert answer.headers["X-Content-Type-Options"] == "nosniff", accept
    page = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page and "frame-ancestors 'none'" in page
    refused = client.post(url, json=body)
    assert refused.status_code == 401 and refused.headers["Cache-Control"] == "no-store"


def test_an_auditors_subject_access_holds_only_its_authoritys_transfers(auth, services, client):
    url, body = "/api/v1/subject-access", {"nhs_number": child(1)["nhs_number"]}
    everything = client.post(url, json=body, headers=auth).get_json()
    assert [t["event_id"] for t in everything["transfers"]] == ["web-1", "web-parked"]
    islington = client.post(url, json=body, headers=bearer(services, "auditor", ISLINGTON))
    assert [t["event_id"] for t in islington.get_json()["transfers"]] == ["web-1"]
    camden = client.post(url, json=body, headers=bearer(services, "auditor", CAMDEN))
    assert camden.get_json()["transfers"] == []


def test_a_recipients_auditor_finds_no_record_of_a_transfer_not_yet_sent_to_it(services, client):
    data = examples.load(examples.ROUTINE_WITHOUT_BASIS)["data"]
    sender, recipient = data["from_authority"], data["to_authority"]

    def found(authority: str) -> list[str]:
        headers = bearer(services, "auditor", authority)
        by_query = client.get("/api/v1/audit", headers=headers).get_json()["records"]
        by_child = client.post(
            "/api/v1/audit/search", json=_child_search(1), headers=headers
        ).get_json()["records"]
        return sorted({r["event_id"] for r in by_query + by_child if r["event_id"]})

    assert found(sender) == ["web-parked"]
    assert found(recipient) == []


def test_an_event_id_finds_its_refusal_for_a_global_admin_and_only_its_transfer_for_an_auditor(
    auth, services, client
):
    """A case system asks why its event never arrived: the refusal is found by the event's id,
    by the operator, whose audit holds every refusal; an authority's auditor finds only the
    records of its own transfer by that id, as refusals are no authority's (what a refused
    message claims does not say who sent it)."""
    refused = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="web-refused", data={}))
    assert services.relay.receive(refused, sender=EMBEDDED).rejection == "contract_violation"

    found = client.get("/api/v1/audit?event_id=web-refused", headers=auth).get_json()
    assert [r["action"] for r in found["records"]] == ["rejected"]
    assert found["records"][0]["detail"]["rejection"] == "contract_violation"
    assert "data" in found["records"][0]["detail"]["reason"]
    body = client.post("/api/v1/audit/search", json={"event_id": "web-refused"}, headers=auth)
    assert body.get_json()["records"] == found["records"]

    hackney = bearer(services, "auditor", HACKNEY)
    assert client.get("/api/v1/audit?event_id=web-refused", headers=hackney).get_json() == {
        "records": [],
        "next_after": None,
        "next": None,
    }
    own = client.get("/api/v1/audit?event_id=web-1", headers=hackney).get_json()["records"]
    assert {r["event_id"] for r in own} == {"web-1"} and len(own) == 4
    havering = bearer(services, "auditor", HAVERING)
    assert client.get("/api/v1/audit?event_id=web-1", headers=havering).get_json()["records"] == []
