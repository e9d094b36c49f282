"""``/api/v1/transfers``: listing transfers, and a practitioner's judgement for a parked one."""

from __future__ import annotations

import json

import pytest
import requests

from service import isps
from service.access import OPERATOR
from service.senders import EMBEDDED
from service.web import create_app
from tests.support import examples, judgements
from tests.support.served import chunked, serving
from tests.support.store_reads import audit_actions
from tests.support.tokens import bearer

HACKNEY, ISLINGTON, NEWHAM, TOWER_HAMLETS, CAMDEN = (
    "E09000012",
    "E09000019",
    "E09000025",
    "E09000030",
    "E09000007",
)
PARKED = examples.load(examples.ROUTINE_WITHOUT_BASIS)["id"]  # Newham -> Tower Hamlets


@pytest.fixture
def client(services):
    """Three transfers from Hackney to Islington under the ISP, then one parked from Newham."""
    services.store.add_isp(examples.pan_london_isp())
    for number in range(3):
        event = examples.routine(f"hk-{number}", case=f"CAF-HK-{number}")
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    services.relay.receive(
        examples.encode(examples.event(examples.ROUTINE_WITHOUT_BASIS)), sender=EMBEDDED
    )
    return create_app(services).test_client()


def _listed(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [transfer["event_id"] for transfer in response.get_json()["transfers"]]


def _last_refusal(services) -> dict:
    return [d for _, a, d in audit_actions(services.store) if a == "access_refused"][-1]


def test_a_global_admin_lists_every_transfer_oldest_first_without_case_data(services, client):
    response = client.get("/api/v1/transfers", headers=bearer(services, "admin"))

    assert _listed(response) == ["hk-0", "hk-1", "hk-2", PARKED]
    parked = response.get_json()["transfers"][-1]
    assert parked["state"] == "awaiting_judgement" and parked["basis"] == "none"
    assert "judgement is needed" in parked["reason"]
    assert response.get_json()["transfers"][0]["basis"] == "isp"
    assert "Okafor" not in response.get_data(as_text=True), "no child's data in a listing"


def test_filters_by_state_authority_and_time_all_apply(services, client):
    admin = bearer(services, "admin")
    received = {
        t["event_id"]: t["received_at"]
        for t in client.get("/api/v1/transfers", headers=admin).get_json()["transfers"]
    }

    def listed(**query) -> list[str]:
        return _listed(client.get("/api/v1/transfers", query_string=query, headers=admin))

    assert listed(state="awaiting_judgement") == [PARKED]
    assert listed(state="signed", authority=ISLINGTON) == ["hk-0", "hk-1", "hk-2"]
    assert listed(authority=TOWER_HAMLETS) == [PARKED]
    assert listed(state="withheld") == []
    assert listed(since=received["hk-1"], until=received[PARKED]) == ["hk-1", "hk-2"]
    assert listed(since=received["hk-2"].removesuffix("Z")) == ["hk-2", PARKED], "UTC if no zone"
    lower = received["hk-2"].replace("T", "t").replace("Z", "z")  # as RFC 3339 allows
    assert listed(since=lower) == ["hk-2", PARKED]
    bad = client.get("/api/v1/transfers", query_string={"state": "lost"}, headers=admin)
    assert bad.status_code == 422 and "state" in bad.get_json()["errors"]["query"]


@pytest.mark.parametrize(
    ("query", "named", "why"),
    [
        ("state=signed&state=awaiting_judgement", "state", "Given more than once"),
        ("limit=2&limit=3", "limit", "Given more than once"),
        ("stat=awaiting_judgement", "stat", "Unknown field"),
    ],
)
def test_a_filter_repeated_or_misspelt_is_a_422_naming_it_not_a_listing_of_something_else(
    services, client, query, named, why
):
    """Read leniently, the first would list the signed transfers only and the last every
    transfer: an answer to a question the caller did not ask, with nothing to say so."""
    response = client.get(f"/api/v1/transfers?{query}", headers=bearer(services, "admin"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "transfers" not in response.get_json()
    assert response.get_json()["errors"]["query"][named][0].startswith(why)


def test_pages_follow_one_another_through_the_next_link(services, client):
    admin = bearer(services, "admin")
    first = client.get("/api/v1/transfers?limit=3", headers=admin).get_json()
    assert [t["event_id"] for t in first["transfers"]] == ["hk-0", "hk-1", "hk-2"]
    assert first["next_after"] == "hk-2"

    second = client.get(first["next"], headers=admin).get_json()
    assert [t["event_id"] for t in second["transfers"]] == [PARKED]
    assert second["next_after"] is None and second["next"] is None


def test_a_caller_with_an_authority_sees_only_its_own_and_may_not_ask_for_another(services, client):
    islington = bearer(services, "practitioner", ISLINGTON)
    assert _listed(client.get("/api/v1/transfers", headers=islington)) == ["hk-0", "hk-1", "hk-2"]
    newham = bearer(services, "publisher", NEWHAM)
    assert _listed(client.get(f"/api/v1/transfers?authority={NEWHAM}", headers=newham)) == [PARKED]

    refused = client.get(f"/api/v1/transfers?authority={HACKNEY}", headers=islington)

    assert refused.status_code == 403
    assert HACKNEY in refused.get_json()["detail"]
    assert _last_refusal(services)["caller"]["authority"] == ISLINGTON


def test_a_cursor_naming_another_authoritys_transfer_tells_nothing_of_it(services, client):
    """``after`` is read as a place in the caller's own listing: naming a transfer it may not
    see answers as an id that does not exist, so the page cannot confirm the transfer exists
    nor, through since/until, when it was received."""
    newham = bearer(services, "publisher", NEWHAM)

    def listed(after: str) -> tuple[int, dict]:
        query = {"after": after}
        response = client.get("/api/v1/transfers", query_string=query, headers=newham)
        return response.status_code, response.get_json()

    assert listed("no-such-event")[0] == 422
    assert listed("hk-0") == listed("no-such-event"), "hk-0 is Hackney's and Islington's"


def _lambeth_shares_with_islington(services, event_id: str) -> None:
    """An ad hoc transfer to Islington on a Lambeth practitioner's judgement: no ISP's."""
    event = examples.event(examples.AD_HOC_WITH_JUDGEMENT, id=event_id)
    event["data"]["to_authority"] = ISLINGTON
    event["data"]["sharing"]["judgement"]["recipients"] = [ISLINGTON]
    services.relay.receive(examples.encode(event), sender=EMBEDDED)


def test_a_page_after_a_transfer_parked_again_since_says_so_rather_than_ending_the_listing(
    services, client
):
    """Islington pages from hk-0, which it was shown; the ISP's suspension then parks hk-0
    again, making it Hackney's alone. The next page must not come back empty as if the listing
    had ended: lam-1 is still there to be listed."""
    _lambeth_shares_with_islington(services, "lam-1")
    islington = bearer(services, "auditor", ISLINGTON)
    first = client.get("/api/v1/transfers?limit=1", headers=islington).get_json()
    assert first["next_after"] == "hk-0"
    isps.suspend(services.store, "pan-london-caf", "Breach.", by=OPERATOR, now=services.clock())
    assert _listed(client.get("/api/v1/transfers", headers=islington)) == ["lam-1"]

    following = client.get(first["next"], headers=islington)

    assert following.status_code == 422, following.get_json()
    said = following.get_json()["errors"]["query"]["after"][0]
    assert "start again from the first page" in said
    unknown = client.get("/api/v1/transfers?after=no-such-event", headers=islington)
    assert unknown.get_json() == following.get_json(), "nothing tells the two apart"


def test_the_recipient_sees_a_parked_transfer_only_once_a_judgement_has_it_sent(services, client):
    tower_hamlets = bearer(services, "practitioner", TOWER_HAMLETS)
    unseen = client.get(f"/api/v1/transfers/{PARKED}", headers=tower_hamlets)
    assert unseen.status_code == 404 and PARKED in unseen.get_json()["detail"]
    assert _listed(client.get("/api/v1/transfers", headers=tower_hamlets)) == []

    client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=judgements.share(),
        headers=bearer(services, "practitioner", NEWHAM),
    )
    seen = client.get(f"/api/v1/transfers/{PARKED}", headers=tower_hamlets)
    assert seen.status_code == 200 and seen.get_json()["state"] == "signed"
    assert _listed(client.get("/api/v1/transfers", headers=tower_hamlets)) == [PARKED]


def test_the_recipient_never_sees_a_transfer_withheld_from_it_nor_why(services, client):
    not_share = judgements.not_share()
    client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=not_share,
        headers=bearer(services, "practitioner", NEWHAM),
    )
    for role in ("practitioner", "publisher", "admin", "auditor"):
        recipient = bearer(services, role, TOWER_HAMLETS)
        response = client.get(f"/api/v1/transfers/{PARKED}", headers=recipient)
        assert response.status_code == 404, role
        assert not_share["reasons"]["necessity"] not in response.get_data(as_text=True)
        listed = client.get("/api/v1/transfers?state=withheld", headers=recipient)
        assert _listed(listed) == [], role
    admin = bearer(services, "admin")
    assert client.get(f"/api/v1/transfers/{PARKED}", headers=admin).get_json()["state"] == (
        "withheld"
    )


def test_the_sending_practitioner_records_a_share_judgement_and_the_transfer_is_signed(
    services, client
):
    judgement = judgements.share()
    response = client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=judgement,
        headers=bearer(services, "practitioner", NEWHAM),
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    view = response.get_json()
    assert view["state"] == "signed" and view["outbox"]["attempts"] == 0
    assert view["decision"]["judgement"] == judgements.as_recorded(judgement)
    assert view["decision"]["permitted_categories"] == judgements.SHARED
    recorded = [e for e in view["timeline"] if e["action"] == "judgement_recorded"]
    assert recorded[0]["detail"]["by"]["role"] == "practitioner"
    assert recorded[0]["detail"]["by"]["authority"] == NEWHAM
    assert [e["action"] for e in view["timeline"]][-3:] == ["basis_decided", "minimised", "signed"]


def test_a_not_share_judgement_withholds_it_and_the_sender_sees_why(services, client):
    response = client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=judgements.not_share(),
        headers=bearer(services, "practitioner", NEWHAM),
    )
    assert response.status_code == 200

    seen = client.get(f"/api/v1/transfers/{PARKED}", headers=bearer(services, "publisher", NEWHAM))
    view = seen.get_json()
    assert view["state"] == "withheld" and view["envelope"] is None
    assert view["decision"]["reason"] == "A practitioner decided not to share."
    assert view["decision"]["judgement"]["reasons"] == judgements.not_share()["reasons"]
    assert view["timeline"][-1]["detail"] == {"reason": "A practitioner decided not to share."}


def test_the_recipients_practitioner_is_told_of_no_such_transfer_and_audited(services, client):
    response = client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=judgements.share(),
        headers=bearer(services, "practitioner", TOWER_HAMLETS),
    )

    assert response.status_code == 404
    assert NEWHAM not in response.get_data(as_text=True)
    refusal = _last_refusal(services)
    assert (refusal["path"], refusal["status"]) == (f"/api/v1/transfers/{PARKED}/judgement", 404)
    assert refusal["caller"]["authority"] == TOWER_HAMLETS
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_a_judgement_breaking_the_contract_gets_field_level_errors(services, client):
    document = judgements.share()
    del document["reasons"]["necessity"]
    response = client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=document,
        headers=bearer(services, "practitioner", NEWHAM),
    )

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert response.get_json()["errors"] == {
        "reasons": {"necessity": ["Missing data for required field."]}
    }


def test_a_judgement_for_another_recipient_is_refused_saying_why_and_it_stays_parked(
    services, client
):
    response = client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        json=judgements.share(recipients=[CAMDEN]),
        headers=bearer(services, "practitioner", NEWHAM),
    )

    assert response.status_code == 422
    assert f"does not name {TOWER_HAMLETS} as a recipient" in response.get_json()["detail"]
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_a_refused_attempt_at_a_judgement_is_the_senders_own_not_shown_to_its_recipient(
    services, client
):
    newham = bearer(services, "practitioner", NEWHAM)
    path = f"/api/v1/transfers/{PARKED}/judgement"
    refused = client.post(path, json=judgements.share(recipients=[CAMDEN]), headers=newham)
    assert refused.status_code == 422
    assert client.post(path, json=judgements.share(), headers=newham).status_code == 200

    def timeline(headers) -> list[str]:
        response = client.get(f"/api/v1/transfers/{PARKED}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [entry["action"] for entry in response.get_json()["timeline"]]

    def audited(auditor_of: str) -> list[str]:
        auditor = bearer(services, "auditor", auditor_of)
        response = client.get(f"/api/v1/audit?authority={auditor_of}", headers=auditor)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [r["action"] for r in response.get_json()["records"] if r["event_id"] == PARKED]

    for sender in (newham, bearer(services, "admin", NEWHAM), bearer(services, "admin")):
        assert timeline(sender)[3:5] == ["judgement_refused", "judgement_recorded"]
    for role in ("practitioner", "publisher", "admin", "auditor"):
        seen = timeline(bearer(services, role, TOWER_HAMLETS))
        assert "judgement_refused" not in seen and "judgement_recorded" in seen, role
    assert "judgement_refused" in audited(NEWHAM)
    received = audited(TOWER_HAMLETS)
    assert "judgement_refused" not in received and "judgement_recorded" in received


def test_a_second_judgement_is_a_conflict(services, client):
    newham = bearer(services, "practitioner", NEWHAM)
    path = f"/api/v1/transfers/{PARKED}/judgement"
    assert client.post(path, json=judgements.not_share(), headers=newham).status_code == 200

    again = client.post(path, json=judgements.share(), headers=newham)

    assert again.status_code == 409
    assert "withheld" in again.get_json()["detail"]
    assert services.store.transfers.view(PARKED)["state"] == "withheld"


def test_a_transfer_with_a_basis_already_cannot_be_judged_again(services, client):
    response = client.post(
        "/api/v1/transfers/hk-0/judgement",
        json=judgements.share(),
        headers=bearer(services, "practitioner", HACKNEY),
    )
    assert response.status_code == 409


def test_a_chunked_judgement_over_the_limit_is_refused_and_the_transfer_stays_parked(
    services, client
):
    body = json.dumps(judgements.share()).encode()
    padded = body[:-1] + b" " * 300_000 + b"}"
    with serving(client.application) as url:
        response = requests.post(
            f"{url}/api/v1/transfers/{PARKED}/judgement",
            data=chunked(padded),
            headers={
                **bearer(services, "practitioner", NEWHAM),
                "Content-Type": "application/json",
            },
            timeout=30,
        )
    assert response.status_code == 413, response.text
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_a_judgement_sent_as_another_type_is_a_415_and_the_transfer_stays_parked(services, client):
    """As for every call that takes JSON: read as no body, it was a baffling 422."""
    answer = client.post(
        f"/api/v1/transfers/{PARKED}/judgement",
        data=json.dumps(judgements.share()),
        headers={**bearer(services, "practitioner", NEWHAM), "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415, answer.get_data(as_text=True)
    assert "application/json" in answer.get_json()["detail"]
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"
