"""Each error the API answers is declared, as a problem, for its operation in the OpenAPI document.

A borough's client generated from the document knows only the statuses it names. ``CALLS`` holds
a call that really answers each error status the README's "HTTP API and access" names, one for
each way an operation comes to declare it: every call (400, 401), ``allow`` (403), a JSON body
(400, 413, 415), ``@blp.arguments`` (422) and the view's own (404, 409, 413, 422). Every other
test's calls are checked the same way (``api_answers_only_what_its_document_declares``, in
tests/conftest.py); these make sure each status is, whatever the other tests call. The 503
every call answers while the database is unavailable is tests/integration/test_web_failures.py's,
which cuts off a database of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from service.access import Role
from service.api.problems import PROBLEM_TYPE
from service.senders import EMBEDDED
from service.web import create_app
from tests.support import examples
from tests.support.declared import AUTOMATIC, declared, required_headers
from tests.support.isps import NEWHAM, YAML, bilateral
from tests.support.tokens import bearer

HACKNEY, ISLINGTON, CAMDEN = "E09000012", "E09000019", "E09000007"
SIGNED = "t-signed"  # a transfer from Hackney to Islington, not failed
TOO_LONG = "too long"  # stands for a body longer than the app accepts


@dataclass(frozen=True)
class Call:
    status: int
    method: str
    path: str
    role: Role | None = None  # None: no token at all
    authority: str | None = None
    json: Any = None
    data: str | None = None
    content_type: str | None = None


CALLS = {
    "a NUL in the URL": Call(400, "GET", "/api/v1/transfers/t%00x", Role.ADMIN),
    "broken JSON": Call(
        400, "POST", "/api/v1/isps", Role.ADMIN, NEWHAM, data="{", content_type="application/json"
    ),
    "a child named twice over": Call(
        400,
        "POST",
        "/api/v1/subject-access",
        Role.AUDITOR,
        ISLINGTON,
        json={"nhs_number": "9434765919", "unique_pupil_number": "A123456789012"},
    ),
    "an event that is not JSON": Call(
        400,
        "POST",
        "/api/v1/events",
        Role.PUBLISHER,
        HACKNEY,
        data="{",
        content_type="application/json",
    ),
    "no token": Call(401, "GET", "/api/v1/isps"),
    "the wrong role": Call(403, "GET", "/api/v1/audit/verify", Role.PUBLISHER, HACKNEY),
    "another authority's audit": Call(
        403, "GET", f"/api/v1/audit?authority={CAMDEN}", Role.AUDITOR, ISLINGTON
    ),
    "an event from another authority": Call(
        403,
        "POST",
        "/api/v1/events",
        Role.PUBLISHER,
        CAMDEN,
        json=examples.event(examples.ROUTINE_WITH_ISP),
    ),
    "no such transfer": Call(404, "GET", "/api/v1/transfers/t-unknown", Role.ADMIN),
    "no such ISP": Call(404, "POST", "/api/v1/isps/unknown/versions/1/confirm", Role.ADMIN),
    "no adapter": Call(404, "DELETE", f"/api/v1/authorities/{ISLINGTON}/adapter", Role.ADMIN),
    "redelivering what has not failed": Call(
        409, "POST", f"/api/v1/transfers/{SIGNED}/redeliver", Role.ADMIN
    ),
    "an ISP id taken": Call(409, "POST", "/api/v1/isps", Role.ADMIN, NEWHAM, json=bilateral()),
    "a body too long": Call(
        413, "POST", "/api/v1/audit/search", Role.AUDITOR, ISLINGTON, data=TOO_LONG
    ),
    "an event too long": Call(
        413, "POST", "/api/v1/events", Role.PUBLISHER, HACKNEY, data=TOO_LONG
    ),
    "an ISP file too long": Call(413, "POST", "/api/v1/isps/import", Role.ADMIN, data=TOO_LONG),
    "YAML where JSON is taken": Call(
        415, "POST", "/api/v1/isps", Role.ADMIN, NEWHAM, data=YAML, content_type="application/yaml"
    ),
    "an ISP file neither JSON nor YAML": Call(
        415, "POST", "/api/v1/isps/import", Role.ADMIN, data=YAML, content_type="text/plain"
    ),
    "a field unknown": Call(422, "GET", "/api/v1/audit?colour=blue", Role.ADMIN),
    "an invalid ISP": Call(422, "POST", "/api/v1/isps", Role.ADMIN, NEWHAM, json={}),
    "an unusable broker user name": Call(
        422, "PUT", f"/api/v1/authorities/{ISLINGTON}/publishers/no%20spaces", Role.ADMIN
    ),
    "an event breaking the contract": Call(
        422, "POST", "/api/v1/events", Role.PUBLISHER, HACKNEY, json={"id": "x"}
    ),
}


@pytest.fixture
def app(services):
    services.store.add_isp(examples.pan_london_isp())
    services.store.add_isp(bilateral())
    event = examples.event(examples.ROUTINE_WITH_ISP, id=SIGNED)
    services.relay.receive(examples.encode(event), sender=EMBEDDED)
    return create_app(services)


def _send(app, services, call: Call):
    headers = bearer(services, call.role, call.authority) if call.role else {}
    data = call.data
    if data == TOO_LONG:
        data = json.dumps({"padding": " " * app.config["MAX_CONTENT_LENGTH"]})
    return app.test_client().open(
        call.path,
        method=call.method,
        json=call.json,
        data=data,
        content_type=call.content_type or ("application/json" if data else None),
        headers=headers,
    )


def _rule(app, call: Call) -> str:
    """The Flask rule the call's path goes to, as the document's operations are found by."""
    urls = app.url_map.bind("localhost")
    rule, _ = urls.match(unquote(urlsplit(call.path).path), call.method, return_rule=True)
    return rule.rule


@pytest.mark.parametrize("why", list(CALLS))
def test_each_error_answered_is_declared_for_its_operation_as_a_problem(services, app, why):
    call = CALLS[why]
    response = _send(app, services, call)
    assert response.status_code == call.status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_TYPE
    assert call.status in declared(call.method, _rule(app, call))


def test_every_operation_declares_the_challenge_its_401_carries(services, app):
    """A client generated from the document may rely on a 401's WWW-Authenticate (RFC 6750:
    whether to get a new token) only if the document says every 401 has one."""
    undeclared = [
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in sorted(rule.methods - AUTOMATIC)
        if "WWW-Authenticate" not in required_headers(method, rule.rule, 401)
    ]
    assert not undeclared, f"a 401 without its WWW-Authenticate declared: {undeclared}"
    response = _send(app, services, CALLS["no token"])
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="caf-relay"'
