"""The ISP register over the API: kept by its parties' admins, read by anyone, audited."""

import io
import json
from datetime import timedelta

import pytest
import requests

from service.domain.basis import decision_day
from service.web import create_app
from tests.support import examples
from tests.support.isps import NEWHAM, TOWER_HAMLETS, YAML, bilateral
from tests.support.served import chunked, serving
from tests.support.store_reads import audit_actions
from tests.support.tokens import bearer

CAMDEN = "E09000007"
ISP = "/api/v1/isps/newham-tower-hamlets"
BILATERAL_QUESTION = (  # what applies to a routine safeguarding transfer between its parties
    f"/api/v1/isps/applicable?from_authority={NEWHAM}&to_authority={TOWER_HAMLETS}"
    "&purpose=safeguarding&on=2026-12-01"
)


@pytest.fixture
def client(services):
    return create_app(services).test_client()


@pytest.fixture
def newham_admin(services):
    return bearer(services, "admin", NEWHAM)


@pytest.fixture
def tower_hamlets_admin(services):
    return bearer(services, "admin", TOWER_HAMLETS)


def _audited(services, action):
    return [detail for _, a, detail in audit_actions(services.store) if a == action]


def test_a_party_admin_creates_an_isp_everyone_reads_it_and_the_audit_says_who(
    services, client, newham_admin
):
    created = client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["isp_id"] == "newham-tower-hamlets"
    assert created.get_json()["unconfirmed"] == [TOWER_HAMLETS]

    practitioner = bearer(services, "practitioner", CAMDEN)
    [listed] = client.get("/api/v1/isps", headers=practitioner).get_json()
    assert (listed["version"], listed["status"], listed["parties"]) == (
        1,
        "active",
        [NEWHAM, TOWER_HAMLETS],
    )
    shown = client.get(ISP, headers=practitioner).get_json()
    assert [v["document"] for v in shown["versions"]] == [bilateral()]

    [audit] = _audited(services, "isp_created")
    assert audit["isp_id"] == "newham-tower-hamlets" and audit["version"] == 1
    assert audit["by"]["authority"] == NEWHAM and audit["by"]["role"] == "admin"


def test_an_admin_of_no_party_and_a_non_admin_are_refused_and_audited(services, client):
    for role, authority in (("admin", CAMDEN), ("practitioner", NEWHAM)):
        refused = client.post(
            "/api/v1/isps", json=bilateral(), headers=bearer(services, role, authority)
        )
        assert refused.status_code == 403
        assert refused.content_type == "application/problem+json"
        refusal = _audited(services, "access_refused")[-1]
        assert refusal["caller"]["authority"] == authority and refusal["path"] == "/api/v1/isps"
    assert client.post("/api/v1/isps", json=bilateral()).status_code == 401
    assert services.store.isps.latest() == {}


def test_a_signature_binds_its_party_once_that_partys_own_admin_confirms_it(
    services, client, newham_admin, tower_hamlets_admin
):
    client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    auditor = bearer(services, "auditor", CAMDEN)
    before = client.get(BILATERAL_QUESTION, headers=auditor).get_json()
    assert before["basis"] is None, "Newham's admin cannot bind Tower Hamlets on its own"
    assert [(c["finding"], c["reason"]) for c in before["considered"]] == [
        (
            "not_confirmed",
            "One of the two authorities has a signature on it that its own admin has not "
            "confirmed.",
        )
    ]

    by_camden = client.post(f"{ISP}/versions/1/confirm", headers=bearer(services, "admin", CAMDEN))
    assert by_camden.status_code == 403
    assert "only an admin of a party it records a signature for" in by_camden.get_json()["detail"]
    by_practitioner = bearer(services, "practitioner", TOWER_HAMLETS)
    assert client.post(f"{ISP}/versions/1/confirm", headers=by_practitioner).status_code == 403
    assert (
        client.post(f"{ISP}/versions/2/confirm", headers=tower_hamlets_admin).get_json()["detail"]
        == "No version 2 of ISP 'newham-tower-hamlets' in the register."
    )

    confirmed = client.post(f"{ISP}/versions/1/confirm", headers=tower_hamlets_admin)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert (confirmed.get_json()["version"], confirmed.get_json()["unconfirmed"]) == (1, [])
    [audit] = _audited(services, "isp_confirmed")
    assert (audit["isp_id"], audit["version"], audit["parties"]) == (
        "newham-tower-hamlets",
        1,
        [TOWER_HAMLETS],
    )
    assert audit["by"]["authority"] == TOWER_HAMLETS and audit["by"]["role"] == "admin"
    after = client.get(BILATERAL_QUESTION, headers=auditor).get_json()
    assert after["basis"] == {"isp_id": "newham-tower-hamlets", "version": 1}

    again = client.post(f"{ISP}/versions/1/confirm", headers=tower_hamlets_admin)
    assert again.status_code == 200 and len(_audited(services, "isp_confirmed")) == 1

    amended = client.post(
        f"{ISP}/versions", json=bilateral(version=2, expires_on="2030-03-31"), headers=newham_admin
    )
    assert amended.get_json()["unconfirmed"] == [TOWER_HAMLETS], "each version is agreed anew"
    assert client.get(BILATERAL_QUESTION, headers=auditor).get_json()["basis"] is None
    [v1, v2] = client.get(ISP, headers=auditor).get_json()["versions"]
    assert (v1["unconfirmed"], v2["unconfirmed"]) == ([], [TOWER_HAMLETS])


def test_a_party_that_has_not_signed_has_nothing_to_confirm(services, client, newham_admin):
    camden_unsigned = bilateral(parties=[NEWHAM, TOWER_HAMLETS, CAMDEN])
    client.post("/api/v1/isps", json=camden_unsigned, headers=newham_admin)
    refused = client.post(f"{ISP}/versions/1/confirm", headers=bearer(services, "admin", CAMDEN))
    assert refused.status_code == 403
    assert "only an admin of a party it records a signature for" in refused.get_json()["detail"]
    assert client.post(f"{ISP}/versions/0/confirm", headers=newham_admin).status_code == 404


def test_an_import_confirms_only_the_importers_own_signatures(services, client, newham_admin):
    documents = [bilateral(), bilateral(version=2, title="Amended")]
    imported = client.post(
        "/api/v1/isps/import",
        data=json.dumps(documents),
        content_type="application/json",
        headers=newham_admin,
    )
    assert [i["unconfirmed"] for i in imported.get_json()] == [[TOWER_HAMLETS], [TOWER_HAMLETS]]
    versions = client.get(ISP, headers=newham_admin).get_json()["versions"]
    assert [[c["party"] for c in v["confirmations"]] for v in versions] == [[NEWHAM], [NEWHAM]]
    assert versions[0]["confirmations"][0]["by"]["authority"] == NEWHAM


def test_a_suspended_version_binds_no_one_so_has_nothing_to_confirm(
    services, client, newham_admin, tower_hamlets_admin
):
    client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    suspended = client.post(f"{ISP}/suspend", json={"reason": "Breach."}, headers=newham_admin)
    assert suspended.get_json()["unconfirmed"] == []
    refused = client.post(f"{ISP}/versions/2/confirm", headers=tower_hamlets_admin)
    assert refused.status_code == 409
    assert "binds no one" in refused.get_json()["detail"]


def test_an_isp_past_its_review_date_still_applies_and_is_flagged_for_review(services, client):
    admin = bearer(services, "admin")
    today = decision_day(services.clock())
    for isp_id, review_by in (("due-today", today), ("overdue", today - timedelta(days=1))):
        document = bilateral(id=isp_id, review_by=review_by.isoformat())
        assert client.post("/api/v1/isps", json=document, headers=admin).status_code == 201
    register = client.get("/api/v1/isps", headers=admin).get_json()
    listed = {i["isp_id"]: i["review_overdue"] for i in register}
    assert listed == {"due-today": False, "overdue": True}
    answer = client.get(BILATERAL_QUESTION, headers=admin).get_json()
    assert answer["basis"] is not None, "an ISP past its review date still applies"
    suspended = client.post(
        "/api/v1/isps/overdue/suspend", json={"reason": "Review."}, headers=admin
    )
    assert suspended.get_json()["review_overdue"] is False, "a suspended one binds no one"


def test_only_the_version_in_force_is_flagged_for_review_not_one_an_amendment_replaced(
    services, client
):
    """Version 1's review date has passed, but version 2, in force since yesterday, replaced
    it: it is version 2's review that the parties are asked for, in the history and in what a
    confirmation of version 1 answers."""
    admin = bearer(services, "admin")
    today = decision_day(services.clock())
    month_ago, yesterday, next_year = (
        (today + timedelta(days=days)).isoformat() for days in (-30, -1, 365)
    )
    v1 = bilateral(effective_from=month_ago, review_by=yesterday)
    v2 = bilateral(version=2, effective_from=yesterday, review_by=next_year)
    assert client.post("/api/v1/isps", json=v1, headers=admin).status_code == 201
    assert client.post(f"{ISP}/versions", json=v2, headers=admin).status_code == 201

    shown = client.get(ISP, headers=admin).get_json()
    confirmed = client.post(f"{ISP}/versions/1/confirm", headers=admin).get_json()

    assert [v["review_overdue"] for v in shown["versions"]] == [False, False]
    assert confirmed["review_overdue"] is False


def test_an_isp_a_global_admin_records_binds_every_party_signed_for(services, client):
    created = client.post("/api/v1/isps", json=bilateral(), headers=bearer(services, "admin"))
    assert created.get_json()["unconfirmed"] == []
    answer = client.get(BILATERAL_QUESTION, headers=bearer(services, "auditor", CAMDEN))
    assert answer.get_json()["basis"] == {"isp_id": "newham-tower-hamlets", "version": 1}


def test_an_invalid_isp_gets_field_level_errors_and_a_taken_id_a_conflict(
    services, client, newham_admin
):
    invalid = bilateral(parties=[NEWHAM, "nowhere"], title="")
    refused = client.post("/api/v1/isps", json=invalid, headers=newham_admin)
    assert refused.status_code == 422
    errors = refused.get_json()["errors"]
    assert set(errors) == {"parties", "title"}

    assert client.post("/api/v1/isps", json=bilateral(), headers=newham_admin).status_code == 201
    again = client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    assert again.status_code == 409
    assert "exists already" in again.get_json()["detail"]
    later = client.post(
        "/api/v1/isps", json=bilateral(id="another-isp", version=2), headers=newham_admin
    )
    assert later.status_code == 409
    assert later.get_json()["errors"] == {
        "version": ["ISP another-isp is new, so the next version is 1."]
    }


def test_an_amendment_is_a_new_version_and_the_old_one_is_kept_as_it_was(
    services, client, newham_admin
):
    client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    widened = bilateral(version=2, parties=[NEWHAM, TOWER_HAMLETS, CAMDEN])

    by_camden = client.post(
        f"{ISP}/versions", json=widened, headers=bearer(services, "admin", CAMDEN)
    )
    assert by_camden.status_code == 403, "a stranger may not amend itself in"
    stale = client.post(f"{ISP}/versions", json=bilateral(), headers=newham_admin)
    assert stale.status_code == 409
    renamed = client.post(
        f"{ISP}/versions", json=bilateral(id="other", version=2), headers=newham_admin
    )
    assert renamed.status_code == 422 and "id" in renamed.get_json()["errors"]

    amended = client.post(f"{ISP}/versions", json=widened, headers=newham_admin)
    assert amended.status_code == 201 and amended.get_json()["version"] == 2
    versions = client.get(ISP, headers=newham_admin).get_json()["versions"]
    assert [v["document"] for v in versions] == [bilateral(), widened]
    assert _audited(services, "isp_amended")[0]["version"] == 2
    assert (
        client.post(
            "/api/v1/isps/no-such-isp/versions",
            json=bilateral(id="no-such-isp"),
            headers=newham_admin,
        ).status_code
        == 404
    )


def test_the_applicability_query_names_an_authority_the_register_does_not_hold(services, client):
    query = (
        f"/api/v1/isps/applicable?from_authority=E09000099&to_authority={TOWER_HAMLETS}"
        "&purpose=safeguarding"
    )
    response = client.get(query, headers=bearer(services, "auditor", CAMDEN))
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "from_authority": ["'E09000099' is not an organisation in the register."]
    }


def test_an_isp_with_a_draft_amendment_still_applies_and_its_parties_suspend_it(
    services, client, newham_admin, tower_hamlets_admin
):
    """The draft would take Tower Hamlets out and Camden in: until it applies, the version in
    force binds Newham and Tower Hamlets, so they may suspend it, and Camden may not."""
    client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    client.post(f"{ISP}/versions/1/confirm", headers=tower_hamlets_admin)
    camden_instead = bilateral(
        version=2,
        status="draft",
        parties=[NEWHAM, CAMDEN],
        signatories=[_signatory(NEWHAM), _signatory(CAMDEN)],
    )
    draft = client.post(f"{ISP}/versions", json=camden_instead, headers=newham_admin)
    assert draft.status_code == 201, draft.get_json()
    query = BILATERAL_QUESTION
    auditor = bearer(services, "auditor", CAMDEN)
    assert client.get(query, headers=auditor).get_json()["basis"] == {
        "isp_id": "newham-tower-hamlets",
        "version": 1,
    }

    camden_admin = bearer(services, "admin", CAMDEN)
    by_camden = client.post(f"{ISP}/suspend", json={"reason": "Why not."}, headers=camden_admin)
    assert by_camden.status_code == 403
    assert (
        "only an admin of a party to v1, the version in force, may"
        in (by_camden.get_json()["detail"])
    )
    suspended = client.post(
        f"{ISP}/suspend", json={"reason": "Breach by Newham."}, headers=tower_hamlets_admin
    )
    assert suspended.status_code == 201, suspended.get_json()
    assert (suspended.get_json()["version"], suspended.get_json()["parties"]) == (
        3,
        [NEWHAM, TOWER_HAMLETS],
    )
    assert client.get(query, headers=auditor).get_json()["basis"] is None

    lifting = bilateral(version=4, status="draft")  # terms proposed to lift it, not yet agreed
    assert client.post(f"{ISP}/versions", json=lifting, headers=newham_admin).status_code == 201
    again = client.post(f"{ISP}/suspend", json={"reason": "Again."}, headers=newham_admin)
    assert again.status_code == 409 and "v3 is suspended" in again.get_json()["detail"]


def test_a_group_signs_for_the_members_that_are_parties_and_for_no_one_else(
    services, client, newham_admin
):
    pan_london_signatory = [_signatory("group:london-authorities")]
    created = client.post(
        "/api/v1/isps", json=bilateral(signatories=pan_london_signatory), headers=newham_admin
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["unconfirmed"] == [TOWER_HAMLETS]
    by_camden = client.post(f"{ISP}/versions/1/confirm", headers=bearer(services, "admin", CAMDEN))
    assert by_camden.status_code == 403


def test_a_yaml_timestamp_where_a_date_belongs_is_a_field_error(services, client, newham_admin):
    # 23:30 UTC on 1 April is 2 April in London: a timestamp's day depends on its offset.
    body = YAML.replace("effective_from: 2026-04-01", "effective_from: 2026-04-01 23:30:00+00:00")
    as_yaml = {**newham_admin, "Content-Type": "application/yaml"}
    answer = client.post("/api/v1/isps/import", data=body, headers=as_yaml)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["errors"] == {"0": {"effective_from": ["Not a valid date."]}}


def test_a_signature_mistyped_for_no_party_is_refused_not_recorded(services, client, newham_admin):
    """Recorded, it would list the ISP as active with nothing unconfirmed, yet never apply."""
    mistyped = YAML.replace("- {party: E09000030,", "- {party: E0900030,")
    as_yaml = {**newham_admin, "Content-Type": "application/yaml"}
    answer = client.post("/api/v1/isps/import", data=mistyped, headers=as_yaml)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["errors"] == {
        "0": {"signatories": {"1": {"party": ["E0900030 is not a party to this ISP."]}}}
    }
    assert client.get(ISP, headers=newham_admin).status_code == 404


def test_an_isp_sent_as_yaml_where_json_is_taken_is_told_where_yaml_goes(client, newham_admin):
    """It was read as no body at all: every field "Missing data for required field"."""
    as_yaml = {**newham_admin, "Content-Type": "application/yaml"}
    answer = client.post("/api/v1/isps", data=YAML, headers=as_yaml)
    assert answer.status_code == 415, answer.get_data(as_text=True)
    assert answer.get_json()["detail"] == (
        "The body must be JSON, sent as Content-Type: application/json; it came as "
        "application/yaml (POST /api/v1/isps/import takes YAML)."
    )
    untyped = client.post("/api/v1/isps", data=json.dumps(bilateral()), headers=newham_admin)
    assert untyped.status_code == 415
    assert client.get(ISP, headers=newham_admin).status_code == 404


def _signatory(code):
    return {"party": code, "name": "DCS", "role": "DCS", "signed_on": "2026-03-20"}


def test_a_suspended_isp_no_longer_applies_and_the_reason_is_audited(
    services, client, newham_admin, tower_hamlets_admin
):
    services.store.add_isp(examples.pan_london_isp())
    client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    client.post(f"{ISP}/versions/1/confirm", headers=tower_hamlets_admin)
    auditor = bearer(services, "auditor", CAMDEN)
    query = BILATERAL_QUESTION
    before = client.get(query, headers=auditor).get_json()
    assert before["basis"] == {"isp_id": "newham-tower-hamlets", "version": 1}
    assert [(c["isp_id"], c["finding"]) for c in before["considered"]] == [
        ("newham-tower-hamlets", "applicable"),
        ("pan-london-caf", "purpose_not_covered"),
    ]

    suspended = client.post(
        f"{ISP}/suspend", json={"reason": "Under review after a breach."}, headers=newham_admin
    )
    assert suspended.status_code == 201
    assert (suspended.get_json()["version"], suspended.get_json()["status"]) == (2, "suspended")

    after = client.get(query, headers=auditor).get_json()
    assert after["basis"] is None
    assert "judgement" in after["reason"]
    assert after["considered"][0] == {
        "isp_id": "newham-tower-hamlets",
        "version": 2,
        "title": "Newham and Tower Hamlets safeguarding ISP",
        "status": "suspended",
        "finding": "suspended",
        "reason": "Suspended: no transfer is shared under it.",
    }
    [audit] = _audited(services, "isp_suspended")
    assert audit["reason"] == "Under review after a breach." and audit["by"]["authority"] == NEWHAM

    twice = client.post(f"{ISP}/suspend", json={"reason": "Again."}, headers=newham_admin)
    assert (
        twice.status_code == 409
        and "only an ISP in force or still to come" in twice.get_json()["detail"]
    )
    assert client.post(f"{ISP}/suspend", json={}, headers=newham_admin).status_code == 422


def test_the_applicability_query_checks_its_parameters(services, client):
    bad = client.get(
        "/api/v1/isps/applicable?from_authority=hackney&purpose=gossip",
        headers=bearer(services, "publisher", NEWHAM),
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]["query"]) == {"from_authority", "to_authority", "purpose"}


def test_a_yaml_file_upload_is_imported(services, client, newham_admin):
    upload = client.post(
        "/api/v1/isps/import",
        data={"file": (io.BytesIO(YAML.encode()), "register.yaml")},
        headers=newham_admin,
    )
    assert upload.status_code == 201, upload.get_json()
    assert [(i["isp_id"], i["version"], i["change"]) for i in upload.get_json()] == [
        ("newham-tower-hamlets", 1, "created")
    ]
    [audit] = _audited(services, "isp_created")
    assert audit["source"] == "register.yaml"
    [terms] = services.store.isps.terms()
    assert terms.purposes == {"safeguarding"}


def test_an_import_is_all_or_nothing_with_errors_by_position(services, client):
    admin = bearer(services, "admin")
    documents = [bilateral(), bilateral(version=2, title="Amended"), bilateral(id="x", status="?")]
    refused = client.post(
        "/api/v1/isps/import",
        data=json.dumps(documents),
        content_type="application/json",
        headers=admin,
    )
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {
        "2": {
            "id": ["String does not match expected pattern."],
            "status": ["Must be one of: draft, active, suspended, retired."],
        }
    }
    assert services.store.isps.latest() == {}

    imported = client.post(
        "/api/v1/isps/import",
        data=json.dumps(documents[:2]),
        content_type="application/json",
        headers=admin,
    )
    assert [i["change"] for i in imported.get_json()] == ["created", "amended"]

    repeated = client.post(
        "/api/v1/isps/import",
        data=json.dumps([bilateral(version=3), bilateral(version=3)]),
        content_type="application/json",
        headers=admin,
    )
    assert repeated.status_code == 409
    assert repeated.get_json()["errors"] == {
        "1": {"version": ["ISP newham-tower-hamlets is at version 3, so the next version is 4."]}
    }
    assert [
        v.document["version"] for v in services.store.isps.versions("newham-tower-hamlets")
    ] == [1, 2]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"id: [unclosed", "application/yaml", 422),
        (b"[" * 100_000, "application/json", 422),
        (b"[]", "application/json", 422),
        (b"7: seven", "application/yaml", 422),
        (b"<isp/>", "application/xml", 415),
    ],
)
def test_an_unreadable_import_is_refused_with_a_problem(
    services, client, body, content_type, status
):
    response = client.post(
        "/api/v1/isps/import",
        data=body,
        content_type=content_type,
        headers=bearer(services, "admin"),
    )
    assert response.status_code == status
    assert response.content_type == "application/problem+json"


def test_an_import_naming_an_isp_the_caller_is_not_party_to_is_refused_whole(services, client):
    documents = [bilateral(), {**examples.pan_london_isp(), "parties": ["E09000001", CAMDEN]}]
    refused = client.post(
        "/api/v1/isps/import",
        data=json.dumps(documents),
        content_type="application/json",
        headers=bearer(services, "admin", NEWHAM),
    )
    assert refused.status_code == 403
    assert "pan-london-caf" in refused.get_json()["detail"]
    assert services.store.isps.latest() == {}
    assert _audited(services, "access_refused")[-1]["path"] == "/api/v1/isps/import"


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        # cut anywhere, a valid ISP: the file must be refused, not imported in part
        ("/api/v1/isps/import", "application/yaml", YAML + "# a long appendix\n" * 20_000),
        ("/api/v1/isps", "application/json", json.dumps({**bilateral(), "padding": "x" * 300_000})),
    ],
    ids=["import", "create"],
)
def test_a_chunked_body_over_the_limit_is_refused_as_too_long_not_read_cut_short(
    services, client, path, content_type, body
):
    with serving(client.application) as url:
        response = requests.post(
            f"{url}{path}",
            data=chunked(body.encode()),
            headers={**bearer(services, "admin"), "Content-Type": content_type},
            timeout=30,
        )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "The request body is longer than 262144 bytes, the most accepted."
    )
    assert services.store.isps.latest() == {}


def test_a_suspension_is_recorded_only_by_suspending_with_a_reason(
    services, client, newham_admin, tower_hamlets_admin
):
    """Amending or importing a version "suspended" would record a suspension with no reason,
    audited as an amendment, and by whoever may amend: here Camden, party only to a draft, who
    may not suspend the agreement that binds Newham and Tower Hamlets."""
    client.post("/api/v1/isps", json=bilateral(), headers=newham_admin)
    client.post(f"{ISP}/versions/1/confirm", headers=tower_hamlets_admin)
    camden_in = bilateral(
        version=2,
        status="draft",
        parties=[NEWHAM, TOWER_HAMLETS, CAMDEN],
        signatories=[_signatory(NEWHAM), _signatory(TOWER_HAMLETS), _signatory(CAMDEN)],
    )
    assert client.post(f"{ISP}/versions", json=camden_in, headers=newham_admin).status_code == 201
    camden_admin = bearer(services, "admin", CAMDEN)
    auditor = bearer(services, "auditor", CAMDEN)
    assert (
        client.post(f"{ISP}/suspend", json={"reason": "-"}, headers=camden_admin).status_code == 403
    )

    amended = client.post(
        f"{ISP}/versions",
        json={**camden_in, "version": 3, "status": "suspended"},
        headers=camden_admin,
    )
    as_yaml = {**newham_admin, "Content-Type": "application/yaml"}
    imported = client.post(
        "/api/v1/isps/import",
        data=YAML.replace("version: 1", "version: 3").replace(
            "status: active", "status: suspended"
        ),
        headers=as_yaml,
    )

    assert amended.status_code == 422, amended.get_json()
    assert "suspend" in amended.get_json()["errors"]["status"][0]
    assert imported.status_code == 422, imported.get_data(as_text=True)
    assert "suspend" in imported.get_json()["errors"]["0"]["status"][0]
    assert client.get(BILATERAL_QUESTION, headers=auditor).get_json()["basis"] == {
        "isp_id": "newham-tower-hamlets",
        "version": 1,
    }
    assert _audited(services, "isp_amended") == [_audited(services, "isp_amended")[0]]
