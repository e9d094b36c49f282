"""Who read a child's record: a subject access export and an audit search by child, through
the API, are each audited with who read, how, and how many transfers, the child only by its
keyed hash; a global admin finds them, an auditor does not see them."""

import json

import pytest

from service.domain.child_keys import identifier_from
from service.web import create_app
from tests.support.children import child, shared_under_the_isp
from tests.support.store_reads import audit_actions
from tests.support.tokens import headers_for, issue

ISLINGTON = "E09000019"
READ = "child_record_read"


@pytest.fixture
def client(services):
    """Hackney sent Islington the cases of children 0 and 1 under the ISP."""
    shared_under_the_isp(services, "read", 2)
    return create_app(services).test_client()


def _reads(services) -> list[dict]:
    return [detail for _, action, detail in audit_actions(services.store) if action == READ]


def _in_clear(text: str, n: int) -> list[str]:
    """The identifiers (and name) of child ``n`` that ``text`` holds."""
    return [value for value in child(n).values() if value in text]


def test_an_export_through_the_api_is_audited_as_a_read_of_the_childs_record(services, client):
    auditor = issue(services, "auditor", ISLINGTON)
    body = {"nhs_number": child(1)["nhs_number"]}
    json_export = client.post("/api/v1/subject-access", json=body, headers=headers_for(auditor))
    assert [t["event_id"] for t in json_export.get_json()["transfers"]] == ["read-1"]
    printable = {**headers_for(auditor), "Accept": "text/html"}
    assert client.post("/api/v1/subject-access", json=body, headers=printable).status_code == 200

    key = services.child_keys.key(identifier_from(body))
    as_json, as_page = _reads(services)
    assert (
        as_json
        == as_page
        == {
            "by": {
                "name": f"test auditor {ISLINGTON}",
                "role": "auditor",
                "authority": ISLINGTON,
                "token_id": auditor.token_id,
            },
            "read": "subject_access",
            "child_keys": [key],
            "transfers": 1,
        }
    )
    assert _in_clear(json.dumps(as_json), 1) == [] and auditor.secret not in json.dumps(as_json)
    assert services.audit.verify().intact


def test_a_global_admin_finds_who_read_a_child_and_an_auditor_does_not(services, client):
    islington = headers_for(issue(services, "auditor", ISLINGTON))
    for n in (0, 1):
        body = {"nhs_number": child(n)["nhs_number"]}
        assert (
            client.post("/api/v1/subject-access", json=body, headers=islington).status_code == 200
        )
    admin = headers_for(issue(services, "admin"))

    listed = client.get(f"/api/v1/audit?action={READ}", headers=admin).get_json()["records"]
    assert [(r["event_id"], r["detail"]["read"]) for r in listed] == [(None, "subject_access")] * 2
    assert all(r["detail"]["by"]["authority"] == ISLINGTON for r in listed)
    assert "child_keys" not in listed[0]["detail"], "the keyed hash stays in the store"
    assert _in_clear(json.dumps(listed), 0) == _in_clear(json.dumps(listed), 1) == []

    of_child_1 = client.post(
        "/api/v1/audit/search",
        json={"unique_pupil_number": child(1)["unique_pupil_number"], "action": READ},
        headers=admin,
    ).get_json()["records"]
    assert of_child_1 == [], "a read is found by the identifier it was made with"
    of_child_1 = client.post(
        "/api/v1/audit/search",
        json={"nhs_number": child(1)["nhs_number"], "action": READ},
        headers=admin,
    ).get_json()["records"]
    assert [r["seq"] for r in of_child_1] == [listed[1]["seq"]]

    own = client.get(f"/api/v1/audit?action={READ}", headers=islington).get_json()["records"]
    assert own == [], "a read belongs to no one transfer: the operator's, as a refused access"


def test_an_audit_search_by_child_is_a_read_and_a_search_naming_none_is_not(services, client):
    auditor = issue(services, "auditor", ISLINGTON)
    found = client.post(
        "/api/v1/audit/search",
        json={"nhs_number": child(0)["nhs_number"], "page_size": 2},
        headers=headers_for(auditor),
    ).get_json()
    assert {r["event_id"] for r in found["records"]} == {"read-0"}
    assert client.get("/api/v1/audit", headers=headers_for(auditor)).status_code == 200

    (read,) = _reads(services)
    assert (read["read"], read["transfers"], read["by"]["token_id"]) == (
        "audit_search",
        1,
        auditor.token_id,
    )
    assert _in_clear(json.dumps(read), 0) == []
    refused = client.post(
        "/api/v1/audit/search", json={"nhs_number": "123"}, headers=headers_for(auditor)
    )
    assert refused.status_code == 400 and len(_reads(services)) == 1, "nothing was read"
