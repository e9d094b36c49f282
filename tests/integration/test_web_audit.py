"""The audit API as an auditor and a subject access officer use it."""

import pytest
import sqlalchemy as sa

from service.relay import EMBEDDED
from service.web import create_app
from tests.support import examples
from tests.support.children import child, transfer_of
from tests.support.tokens import bearer


@pytest.fixture
def auth(services):
    return bearer(services, "admin")


@pytest.fixture
def client(services):
    services.store.add_isp(examples.pan_london_isp())
    for n in range(3):
        event = transfer_of(examples.ROUTINE_WITH_ISP, f"web-{n}", child(n))
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    return create_app(services).test_client()


@pytest.mark.parametrize(
    "path", ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/subject-access?nhs_number=1"]
)
def test_the_audit_api_needs_the_token(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_verify_reports_an_intact_chain_then_the_first_bad_record(auth, services, client):
    body = client.get("/api/v1/audit/verify", headers=auth).get_json()
    # 3 transfers of 4 records each, the ISP recorded, the auditor's token created.
    assert body["intact"] is True and body["records"] == 14
    assert body["first_bad_record"] is None

    engine = sa.create_engine(services.store.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_records WHERE seq = 4"))
    engine.dispose()
    body = client.get("/api/v1/audit/verify", headers=auth).get_json()
    assert body["intact"] is False
    assert body["first_bad_record"]["seq"] == 4
    assert body["first_bad_record"]["damage"] == "deleted"


def test_search_pages_through_a_childs_records_by_link(auth, client):
    query = f"nhs_number={child(1)['nhs_number']}&page_size=3"
    first = client.get(f"/api/v1/audit?{query}", headers=auth).get_json()
    assert [r["action"] for r in first["records"]] == ["received", "basis_decided", "minimised"]
    assert {r["event_id"] for r in first["records"]} == {"web-1"}
    second = client.get(first["next"], headers=auth).get_json()
    assert [r["action"] for r in second["records"]] == ["signed"]
    assert second["next"] is None


def test_a_bad_search_parameter_is_a_400_saying_which(auth, client):
    response = client.get("/api/v1/audit?basis=hunch", headers=auth)
    assert response.status_code == 400
    assert "basis" in response.get_json()["detail"]


def test_subject_access_is_json_or_a_printable_page(auth, client):
    url = f"/api/v1/subject-access?nhs_number={child(2)['nhs_number']}"
    body = client.get(url, headers=auth).get_json()
    assert [t["event_id"] for t in body["transfers"]] == ["web-2"]
    page = client.get(url, headers={**auth, "Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Hackney to Islington" in page.get_data(as_text=True)
    missing = client.get("/api/v1/subject-access", headers=auth)
    assert missing.status_code == 400 and "Name the child" in missing.get_json()["detail"]
