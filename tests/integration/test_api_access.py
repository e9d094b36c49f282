"""Every API endpoint refuses a caller with no token, with the wrong role, or acting for another
authority; writes each refusal of a known caller to the audit trail, and logs each of an unknown
one.

``SAMPLES`` holds one concrete request per endpoint; a test fails when an endpoint exists that
the table does not cover, so a new endpoint cannot ship unguarded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from service.access import OPERATOR, Role
from service.api.guard import ROLES_ATTRIBUTE
from service.senders import EMBEDDED
from service.web import create_app
from tests.support import examples, judgements
from tests.support.cli import runner
from tests.support.isps import NEWHAM, TOWER_HAMLETS, bilateral
from tests.support.store_reads import audit_actions
from tests.support.tokens import bearer

HACKNEY, ISLINGTON, CAMDEN = "E09000012", "E09000019", "E09000007"
GLOBAL = "global"  # only a global admin may call it
SIGNED = "t-signed"  # a transfer from Hackney to Islington
PARKED = "t-parked"  # a transfer from Newham to Tower Hamlets, awaiting judgement


@dataclass(frozen=True)
class Sample:
    path: str
    owner: str | None = None  # the authority (or GLOBAL) the call acts on; None: not scoped
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


ADAPTER = "/api/v1/authorities/E09000019/adapter"
SAMPLES: dict[tuple[str, str], Sample] = {
    ("POST", "/api/v1/events"): Sample(
        "/api/v1/events", owner=HACKNEY, json=examples.event(examples.ROUTINE_WITH_ISP)
    ),
    ("GET", "/api/v1/transfers"): Sample(
        "/api/v1/transfers", HACKNEY, query={"authority": HACKNEY}
    ),
    ("GET", "/api/v1/transfers/<path:event_id>"): Sample(f"/api/v1/transfers/{SIGNED}", HACKNEY),
    ("POST", "/api/v1/transfers/<path:event_id>/redeliver"): Sample(
        f"/api/v1/transfers/{SIGNED}/redeliver", ISLINGTON
    ),
    ("POST", "/api/v1/transfers/<path:event_id>/judgement"): Sample(
        f"/api/v1/transfers/{PARKED}/judgement", NEWHAM, json=judgements.share()
    ),
    ("GET", "/api/v1/authorities"): Sample("/api/v1/authorities"),
    ("POST", "/api/v1/authorities"): Sample(
        "/api/v1/authorities",
        GLOBAL,
        json={"code": "RF4", "name": "Barking, Havering and Redbridge NHS Trust", "kind": "health"},
    ),
    ("GET", "/api/v1/authorities/<code>"): Sample(f"/api/v1/authorities/{ISLINGTON}"),
    ("PATCH", "/api/v1/authorities/<code>"): Sample(
        f"/api/v1/authorities/{ISLINGTON}", ISLINGTON, json={"jwks": None}
    ),
    ("GET", "/api/v1/authorities/<code>/adapter"): Sample(ADAPTER, ISLINGTON),
    ("PUT", "/api/v1/authorities/<code>/adapter"): Sample(
        ADAPTER,
        ISLINGTON,
        json={
            "type": "https",
            "settings": {"url": "https://caf.islington.example/inbox"},
            "secrets": {"bearer_token": "islington-bearer-token"},
        },
    ),
    ("DELETE", "/api/v1/authorities/<code>/adapter"): Sample(ADAPTER, ISLINGTON),
    ("POST", "/api/v1/authorities/<code>/adapter/test"): Sample(f"{ADAPTER}/test", ISLINGTON),
    ("PUT", "/api/v1/authorities/<code>/publishers/<broker_user>"): Sample(
        f"/api/v1/authorities/{ISLINGTON}/publishers/islington-cms", ISLINGTON
    ),
    ("DELETE", "/api/v1/authorities/<code>/publishers/<broker_user>"): Sample(
        f"/api/v1/authorities/{ISLINGTON}/publishers/islington-cms", ISLINGTON
    ),
    ("GET", "/api/v1/isps"): Sample("/api/v1/isps"),
    ("POST", "/api/v1/isps"): Sample("/api/v1/isps", NEWHAM, json=bilateral(id="other-isp")),
    ("GET", "/api/v1/isps/<isp_id>"): Sample("/api/v1/isps/newham-tower-hamlets"),
    ("POST", "/api/v1/isps/<isp_id>/versions"): Sample(
        "/api/v1/isps/newham-tower-hamlets/versions", NEWHAM, json=bilateral(version=2)
    ),
    ("POST", "/api/v1/isps/<isp_id>/versions/<int(min=1):version>/confirm"): Sample(
        "/api/v1/isps/newham-tower-hamlets/versions/1/confirm", TOWER_HAMLETS
    ),
    ("POST", "/api/v1/isps/<isp_id>/suspend"): Sample(
        "/api/v1/isps/newham-tower-hamlets/suspend", NEWHAM, json={"reason": "Under review."}
    ),
    ("POST", "/api/v1/isps/import"): Sample(
        "/api/v1/isps/import", NEWHAM, json=bilateral(id="imported-isp")
    ),
    ("GET", "/api/v1/isps/applicable"): Sample(
        "/api/v1/isps/applicable",
        query={
            "from_authority": NEWHAM,
            "to_authority": TOWER_HAMLETS,
            "purpose": "safeguarding",
            "flow": "caf.case-transfer.requested",
            "on": "2026-11-24",
        },
    ),
    ("GET", "/api/v1/audit"): Sample("/api/v1/audit", ISLINGTON, query={"authority": ISLINGTON}),
    ("POST", "/api/v1/audit/search"): Sample(
        "/api/v1/audit/search", ISLINGTON, json={"authority": ISLINGTON}
    ),
    ("GET", "/api/v1/audit/verify"): Sample("/api/v1/audit/verify"),
    ("POST", "/api/v1/subject-access"): Sample(
        "/api/v1/subject-access", json={"nhs_number": "9434765919"}
    ),
    ("GET", "/metrics"): Sample("/metrics"),
}
# Samples the right caller may make but the relay refuses on their merits, with the status that
# shows the handler ran: t-signed has not failed, so it cannot be redelivered.
TOLD_OF_NO_SUCH_TRANSFER = {
    key for key in SAMPLES if key[1].startswith("/api/v1/transfers/<path:event_id>")
}
REFUSED_ON_THEIR_MERITS = {("POST", "/api/v1/transfers/<path:event_id>/redeliver"): 409}


@pytest.fixture
def app(services):
    services.store.add_isp(examples.pan_london_isp())
    services.store.add_isp(bilateral(status="active", purposes=["early_help"]))
    for name, event_id in (
        (examples.ROUTINE_WITH_ISP, SIGNED),
        (examples.ROUTINE_WITHOUT_BASIS, PARKED),
    ):
        event = examples.event(name, id=event_id)
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    return create_app(services)


def _guarded_rules(app) -> dict[tuple[str, str], str]:
    return {
        (method, rule.rule): rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") or rule.rule == "/metrics"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def _roles(app, key) -> tuple[Role, ...]:
    return getattr(app.view_functions[_guarded_rules(app)[key]], ROLES_ATTRIBUTE)


def _call(client, key, headers):
    sample = SAMPLES[key]
    return client.open(
        sample.path,
        method=key[0],
        json=sample.json,
        query_string=sample.query,
        headers={**sample.headers, **headers},
    )


def _arrange_what_the_samples_act_on(services, secret: str = "islington-bearer-token") -> None:
    """Islington's https adapter (holding ``secret``) and publisher, which samples read, test
    or remove: without them those calls answer 404 however well they are guarded."""
    services.store.organisations.set_adapter(
        ISLINGTON, "https", {"url": "https://127.0.0.1:9/caf"}, {"bearer_token": secret}
    )
    services.store.access.set_broker_publisher("islington-cms", ISLINGTON, by=OPERATOR)


def _last_refusal(services) -> dict[str, Any]:
    return [d for _, a, d in audit_actions(services.store) if a == "access_refused"][-1]


def test_every_guarded_endpoint_is_covered_here_and_declares_its_roles(app):
    assert set(_guarded_rules(app)) == set(SAMPLES)
    for key in SAMPLES:
        assert _roles(app, key), f"{key} admits no role"


@pytest.mark.parametrize("key", list(SAMPLES), ids=" ".join)
def test_no_token_is_refused_and_logged_but_not_audited(services, app, key, caplog):
    audited = len(audit_actions(services.store))
    for headers in ({}, {"Authorization": "Bearer cafr_unknown"}):
        with caplog.at_level(logging.WARNING, logger="service.api.guard"):
            response = _call(app.test_client(), key, headers)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert f"{key[0]} {SAMPLES[key].path} from" in caplog.records[-1].getMessage()
        assert "cafr_unknown" not in caplog.text
    assert len(audit_actions(services.store)) == audited


@pytest.mark.parametrize("key", list(SAMPLES), ids=" ".join)
def test_a_token_of_the_wrong_role_is_refused_and_audited(services, app, key):
    allowed = _roles(app, key)
    wrong = [role for role in Role if role not in allowed]
    if not wrong:
        pytest.skip("every role may call it")
    owner = SAMPLES[key].owner
    authority = owner if owner not in (None, GLOBAL) else HACKNEY
    for role in wrong:
        response = _call(app.test_client(), key, bearer(services, role, authority))
        assert response.status_code == 403, (role, response.get_data(as_text=True))
        refusal = _last_refusal(services)
        assert refusal["caller"]["role"] == role.value and refusal["status"] == 403


SCOPED = [key for key, sample in SAMPLES.items() if sample.owner is not None]


@pytest.mark.parametrize("key", SCOPED, ids=" ".join)
def test_a_token_for_another_authority_is_refused_and_audited_and_the_right_one_is_not(
    services, app, key
):
    owner = SAMPLES[key].owner
    role = _roles(app, key)[0]
    other = bearer(services, role, CAMDEN)
    response = _call(app.test_client(), key, other)
    if key in TOLD_OF_NO_SUCH_TRANSFER:  # not even that it exists, nor between whom
        assert response.status_code == 404, response.get_data(as_text=True)
        assert owner not in response.get_data(as_text=True)
    else:
        assert response.status_code == 403, response.get_data(as_text=True)
    refusal = _last_refusal(services)
    assert refusal["caller"]["authority"] == CAMDEN and refusal["path"] == SAMPLES[key].path

    _arrange_what_the_samples_act_on(services)
    own = bearer(services, "admin") if owner == GLOBAL else bearer(services, role, owner)
    response = _call(app.test_client(), key, own)
    if key in REFUSED_ON_THEIR_MERITS:
        assert response.status_code == REFUSED_ON_THEIR_MERITS[key], response.get_data(as_text=True)
    else:
        assert response.status_code < 400, response.get_data(as_text=True)


def test_no_endpoint_ever_answers_with_an_adapter_secret(services, app):
    secret = "islington-s3cret-that-no-response-may-hold"
    client = app.test_client()
    for key, sample in SAMPLES.items():
        # Again before each call: a sample before it may have replaced or removed the adapter.
        _arrange_what_the_samples_act_on(services, secret)
        if sample.owner in (None, GLOBAL):
            headers = bearer(services, "admin")
        else:
            headers = bearer(services, _roles(app, key)[0], sample.owner)
        response = _call(client, key, headers)
        assert response.status_code not in (401, 403, 404, 500), (key, response.status_code)
        assert secret not in response.get_data(as_text=True), key


@pytest.mark.parametrize("key", list(SAMPLES), ids=" ".join)
def test_a_global_monitor_reads_metrics_and_nothing_else(services, app, key):
    response = _call(app.test_client(), key, bearer(services, Role.MONITOR))
    if key == ("GET", "/metrics"):
        assert response.status_code == 200
    else:
        assert response.status_code == 403, response.get_data(as_text=True)
        caller = _last_refusal(services)["caller"]
        assert (caller["role"], caller["authority"]) == ("monitor", None)


@pytest.mark.parametrize("role", ["publisher", "practitioner", "auditor"])
def test_only_an_admin_or_monitor_token_may_be_global(services, role):
    # A token with no authority is unscoped: an auditor's would read every authority's audit.
    run = runner(services)
    made = run("token", "create", "--name", f"unscoped {role}", "--role", role)
    assert made.exit_code != 0
    assert f"A {role} token must name the one authority it acts for." in made.output
    assert json.loads(run("token", "list", "--json").output) == []
    now = services.clock()
    with pytest.raises(ValueError, match="must name the one authority"):
        services.store.access.create_token(
            name="unscoped",
            role=Role(role),
            authority=None,
            now=now,
            expires_at=now + timedelta(days=1),
            by=OPERATOR,
        )


def test_a_global_monitor_token_is_made_at_the_command_line(services):
    made = runner(services)("token", "create", "--name", "Prometheus", "--role", "monitor")
    assert made.exit_code == 0, made.output
    assert "(monitor, global) for Prometheus" in made.output


def test_a_token_revoked_at_the_command_line_is_refused_at_once_by_a_running_app(services):
    run = runner(services)
    made = run(
        "token", "create", "--name", "Islington ops", "--role", "admin", "--authority", ISLINGTON
    )
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    client = create_app(services).test_client()  # running before, and after, the revocation
    assert client.get(ADAPTER, headers=headers).status_code == 404, "let in: no adapter yet"

    (token,) = json.loads(run("token", "list", "--json").output)
    assert run("token", "revoke", token["token_id"]).exit_code == 0
    refused = client.get(ADAPTER, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].endswith('error="invalid_token"')
    again = run("token", "revoke", token["token_id"])
    assert again.exit_code == 1 and f"No live token {token['token_id']}." in again.output
    (listed,) = json.loads(run("token", "list", "--json").output)
    assert listed["revoked_at"] is not None
    revoked = [d for _, a, d in audit_actions(services.store) if a == "token_revoked"]
    assert [d["token_id"] for d in revoked] == [token["token_id"]]
