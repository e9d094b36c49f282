"""Property-based: whatever a publisher sends, intake answers it, stores it or refuses it on the
record, and never quotes a child's data into the audit (which is kept for good).

The examples are drawn from the published ones bent out of shape (``tests.support.mutations``).
Hypothesis runs a fixed, modest number of them, derandomized, so a run takes seconds and finds
the same thing every time; a failure is shrunk to the smallest document that still fails.
"""

from __future__ import annotations

import io
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from contracts import export
from contracts.vocabulary import TransferState
from service.senders import EMBEDDED
from service.signing import verify
from service.web import create_app
from tests.support import examples, judgements, mutations
from tests.support.store_reads import audit_actions, outbound
from tests.support.tokens import bearer

# The services are one database for all of a test's examples, as a relay's is for all its
# events: what one example stores, the next meets (a duplicate id, an ISP imported).
BOUNDED = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STATES = {state.value for state in TransferState}
PUBLISHED_ENVELOPE = Draft202012Validator(
    json.loads((export.PUBLISHED / "envelope.schema.json").read_text(encoding="utf-8")),
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)
# Mostly JSON: a body of another type is refused before it is read.
EVENT_TYPES = [*["application/json"] * 4, "application/cloudevents+json", "text/plain", None]


def _new_audit(services, seen: int) -> list[tuple[str | None, str, dict]]:
    return audit_actions(services.store)[seen:]


def _check_reason_quotes_no_child_data(reason: str) -> None:
    quoted = sorted(value for value in mutations.CHILD_DATA if value in reason)
    assert not quoted, f"the refusal {reason!r} quotes the child's data {quoted}"


def _check_outcome(services, received, seen: int) -> None:
    """Stored in a state a transfer can have, a duplicate, or refused with its reason audited."""
    audited = _new_audit(services, seen)
    if received.rejection is not None:
        assert received.reason
        _check_reason_quotes_no_child_data(received.reason)
        assert ("rejected", received.rejection.value, received.reason) in [
            (action, detail.get("rejection"), detail.get("reason")) for _, action, detail in audited
        ]
    elif received.duplicate:
        assert [action for _, action, _ in audited] == ["duplicate"]
    else:
        assert received.state in STATES
        assert services.store.transfers.view(received.event_id)["state"] == received.state
        assert audited[0][1] == "received"
        envelope = outbound(services.store, received.event_id)
        if envelope is not None:  # what its recipient gets keeps the published contract
            _, payload = verify(envelope.jws, services.keyring.jwks())
            assert not list(PUBLISHED_ENVELOPE.iter_errors(payload))


@pytest.fixture
def relay_with_isp(services):
    services.store.add_isp(examples.pan_london_isp())
    return services


def test_the_relay_stores_or_refuses_on_the_record_whatever_it_is_sent(relay_with_isp):
    services = relay_with_isp

    @BOUNDED
    @given(mutations.mutated_events())
    def check(sent: tuple[str, bytes]) -> None:
        _, body = sent
        seen = len(audit_actions(services.store))
        received = services.relay.receive(body, sender=EMBEDDED)
        _check_outcome(services, received, seen)

    check()
    assert services.audit.verify().intact


def test_the_events_api_never_answers_a_server_error_whatever_it_is_sent(relay_with_isp):
    services = relay_with_isp
    client = create_app(services).test_client()
    publishers = {
        name: bearer(services, "publisher", examples.load(name)["data"]["from_authority"])
        for name in examples.ALL_EVENTS
    }

    @BOUNDED
    @given(mutations.mutated_events(), st.sampled_from(EVENT_TYPES))
    def check(sent: tuple[str, bytes], content_type: str | None) -> None:
        name, body = sent
        seen = len(audit_actions(services.store))
        response = client.post(
            "/api/v1/events", data=body, content_type=content_type, headers=publishers[name]
        )
        assert response.status_code < 500, response.get_data(as_text=True)
        answer = response.get_json()
        if response.status_code in (200, 202):
            assert answer["state"] in STATES
            return
        _check_reason_quotes_no_child_data(answer["detail"])
        audited = [detail.get("reason") for _, _, detail in _new_audit(services, seen)]
        assert answer["detail"] in audited

    check()
    assert services.audit.verify().intact


def test_the_judgement_api_never_answers_a_server_error_whatever_it_is_sent(services):
    client = create_app(services).test_client()
    practitioner = bearer(services, "practitioner", judgements.NEWHAM)
    numbers = itertools.count()
    documents = st.sampled_from([judgements.share(), judgements.not_share()]).flatmap(
        mutations.mutated
    )

    @BOUNDED
    @given(documents.flatmap(mutations.encoded), st.sampled_from(EVENT_TYPES))
    def check(body: bytes, content_type: str | None) -> None:
        parked = examples.event(examples.ROUTINE_WITHOUT_BASIS, id=f"parked-{next(numbers)}")
        services.relay.receive(examples.encode(parked), sender=EMBEDDED)
        seen = len(audit_actions(services.store))
        response = client.post(
            f"/api/v1/transfers/{parked['id']}/judgement",
            data=body,
            content_type=content_type,
            headers=practitioner,
        )
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code == 200:
            assert response.get_json()["state"] in {"signed", "withheld"}
        elif response.status_code == 422:  # read, and refused on the transfer's record
            refused = [
                detail["reason"]
                for _, action, detail in _new_audit(services, seen)
                if action == "judgement_refused"
            ]
            assert refused == [response.get_json()["detail"]]

    check()
    assert services.audit.verify().intact


def test_the_isp_import_never_answers_a_server_error_whatever_it_is_sent(services):
    client = create_app(services).test_client()
    admin = bearer(services, "admin")
    documents = st.one_of(
        mutations.mutated(examples.pan_london_isp()),
        st.lists(mutations.mutated(examples.pan_london_isp()), min_size=0, max_size=2),
    )
    as_json = documents.flatmap(mutations.encoded).map(lambda body: ("application/json", body))
    as_yaml = documents.flatmap(mutations.as_yaml).map(lambda body: ("application/yaml", body))

    @BOUNDED
    @given(st.one_of(as_json, as_yaml), st.booleans())
    def check(sent: tuple[str, bytes], as_upload: bool) -> None:
        content_type, body = sent
        if as_upload:
            suffix = ".json" if content_type == "application/json" else ".yaml"
            request = {"data": {"file": (io.BytesIO(body), f"isp{suffix}")}}
        else:
            request = {"data": body, "content_type": content_type}
        response = client.post("/api/v1/isps/import", headers=admin, **request)
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code == 201:
            assert json.loads(response.get_data())

    check()
    assert services.audit.verify().intact
