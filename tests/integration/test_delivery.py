"""Delivery from the outbox to a real HTTPS endpoint: retries, giving up, redelivery, receipts,
order within a case, and recipients that do not hold each other up."""

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import pika
import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from joserfc import jws as joserfc_jws
from joserfc.jwk import OKPKey
from marshmallow import Schema, fields

from adapters import amqp
from adapters.amqp import AmqpAdapter
from adapters.base import DeliveryFailed, GroupAdapter, Receipt
from service.access import OPERATOR
from service.delivery import Deliverer
from service.delivery_loop import DeliveryLoop
from service.domain.retry import RetryPolicy
from service.senders import EMBEDDED
from service.signing import KeyRing
from service.store import tables as t
from service.store.outbox import Claimed, Lease
from service.web import create_app
from tests.conftest import BROKER_HOST
from tests.support import examples, withdrawing
from tests.support.adapter_plugins import install_adapters
from tests.support.amqp import wait_until
from tests.support.https_receiver import HttpsReceiver, event_ids, https_recipients
from tests.support.store_reads import audit_actions, outbound
from tests.support.tcp_proxy import tcp_proxy
from tests.support.tokens import bearer

ISLINGTON, CAMDEN, SOUTHWARK, WESTMINSTER = "E09000019", "E09000007", "E09000028", "E09000033"


@pytest.fixture
def receiver(services, tmp_path):
    with https_recipients(services, tmp_path, ISLINGTON, CAMDEN) as running:
        yield running


def _deliverer(services, **policy) -> Deliverer:
    """A deliverer whose retries fall due at once (no jitter), so tests need not wait."""
    return Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(**{"max_attempts": 3, "base_delay": timedelta(seconds=1), **policy}),
        lease=timedelta(minutes=1),
        clock=services.clock,
        jitter=lambda: 0.0,
    )


def _send(services, event_id, *, case="CAF-HK-2026-0001", to=ISLINGTON) -> str:
    event = examples.routine(event_id, case=case, to=to)
    assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
    return event_id


def _actions(services, event_id):
    return [action for _, action, _ in audit_actions(services.store, event_id)]


def test_a_failed_attempt_is_retried_with_the_same_envelope_until_it_arrives(
    services, receiver, caplog
):
    event_id = _send(services, "retried")
    receiver.respond_with(503, 503)

    with caplog.at_level(logging.INFO, logger="service.delivery"):
        assert _deliverer(services).deliver_due("test") == 3

    assert [r.headers["X-Caf-Envelope-Id"] for r in receiver.requests] == [
        services.store.transfers.view(event_id)["envelope"]["envelope_id"]
    ] * 3
    view = services.store.transfers.view(event_id)
    assert view["state"] == "delivered" and view["outbox"] is None
    assert [d["succeeded"] for d in view["deliveries"]] == [False, False, True]
    assert "HTTP 503" in view["deliveries"][0]["detail"]
    assert _actions(services, event_id)[-3:] == ["delivery_failed", "delivery_failed", "delivered"]
    said = [
        (r.levelname, r.getMessage()[:18])
        for r in caplog.records
        if getattr(r, "event_id", None) == event_id
    ]
    assert said == [("WARNING", "delivery retry: HT")] * 2 + [("INFO", "delivery delivered")]


def test_after_the_last_attempt_the_transfer_is_failed_and_can_be_redelivered(
    services, receiver, caplog
):
    event_id = _send(services, "gives-up")
    receiver.respond_with(503, 503, 503)

    with caplog.at_level(logging.INFO, logger="service.delivery"):
        _deliverer(services).deliver_due("test")
    last = caplog.records[-1]
    assert (last.levelname, last.event_id) == ("ERROR", event_id)
    assert last.getMessage().startswith("delivery failed: HTTP 503")

    view = services.store.transfers.view(event_id)
    assert view["state"] == "failed" and view["outbox"] is None
    failed = audit_actions(services.store, event_id)[-1]
    assert failed[1] == "failed" and failed[2]["gave_up"] == "3 attempts made, the most allowed"

    client = create_app(services).test_client()
    auth = bearer(services, "admin", ISLINGTON)
    response = client.post(f"/api/v1/transfers/{event_id}/redeliver", headers=auth)
    assert response.status_code == 202 and response.get_json()["state"] == "signed"
    assert _deliverer(services).deliver_due("test") == 1
    assert services.store.transfers.view(event_id)["state"] == "delivered"
    (redelivery,) = [d for _, a, d in audit_actions(services.store, event_id) if a == "redelivery"]
    assert (redelivery["by"]["role"], redelivery["by"]["authority"]) == ("admin", ISLINGTON)
    assert redelivery["by"]["token_id"]
    again = client.post(f"/api/v1/transfers/{event_id}/redeliver", headers=auth)
    assert again.status_code == 409


def test_a_delivery_still_failing_past_the_age_allowed_for_retries_is_failed(services, receiver):
    event_id = _send(services, "too-old")
    receiver.respond_with(503)
    # The first attempt is made three days after the transfer was signed (the relay was down).
    late = Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(max_age=timedelta(days=2)),
        lease=timedelta(minutes=1),
        clock=lambda: services.clock() + timedelta(days=3),
        jitter=lambda: 0.0,
    )

    assert late.deliver_due("test") == 1

    assert services.store.transfers.view(event_id)["state"] == "failed"
    failed = audit_actions(services.store, event_id)[-1]
    assert failed[1] == "failed"
    assert failed[2]["gave_up"] == "older than the 2 days, 0:00:00 allowed for retries"


def test_a_refusal_no_retry_can_fix_fails_at_once(services, receiver):
    event_id = _send(services, "refused")
    receiver.respond_with(400)
    assert _deliverer(services).deliver_due("test") == 1
    assert services.store.transfers.view(event_id)["state"] == "failed"
    assert len(receiver.requests) == 1


@pytest.fixture
def borough_key(tmp_path):
    return KeyRing.from_file(tmp_path / "islington-receipts.pem", create=True)


def _signing_receipts(keyring: KeyRing, received_at: str = "2026-11-24T10:00:00Z"):
    def answer(request):
        receipt = {
            "envelope_id": request.headers["X-Caf-Envelope-Id"],
            "sha256": hashlib.sha256(request.body).hexdigest(),
            "received_at": received_at,
        }
        return 200, {"Content-Type": "application/jose+json"}, keyring.sign(receipt).encode()

    return answer


def test_a_signed_receipt_is_verified_against_the_recipients_keys_and_stored(
    services, receiver, borough_key
):
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    receiver.answer = _signing_receipts(borough_key)
    event_id = _send(services, "with-receipt")

    _deliverer(services).deliver_due("test")

    view = services.store.transfers.view(event_id)
    assert view["state"] == "delivered"
    assert json.loads(view["deliveries"][0]["receipt"])["payload"]
    receipt = audit_actions(services.store, event_id)[-1]
    assert receipt[1:] == (
        "receipt",
        {"verified": True, "kid": borough_key.kid, "received_at": "2026-11-24T10:00:00Z"},
    )


def test_a_receipt_signed_by_another_key_is_recorded_as_not_verified(
    services, receiver, borough_key, tmp_path
):
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    receiver.answer = _signing_receipts(KeyRing.from_file(tmp_path / "forger.pem", create=True))
    event_id = _send(services, "forged-receipt")

    _deliverer(services).deliver_due("test")

    _, action, detail = audit_actions(services.store, event_id)[-1]
    assert action == "receipt" and detail["verified"] is False
    assert "does not verify" in detail["reason"]


@pytest.mark.parametrize("wrong", ["envelope_id", "sha256"])
def test_a_receipt_for_another_envelope_or_content_is_recorded_as_not_verified(
    services, receiver, borough_key, wrong
):
    # Signed by the right key, but not for what was sent: it proves nothing about this delivery.
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)

    def answer(request):
        receipt = {
            "envelope_id": request.headers["X-Caf-Envelope-Id"],
            "sha256": hashlib.sha256(request.body).hexdigest(),
            wrong: "0" * 64,
        }
        return 200, {"Content-Type": "application/jose+json"}, borough_key.sign(receipt).encode()

    receiver.answer = answer
    event_id = _send(services, f"receipt-wrong-{wrong}")

    _deliverer(services).deliver_due("test")

    assert services.store.transfers.view(event_id)["state"] == "delivered"
    _, action, detail = audit_actions(services.store, event_id)[-1]
    assert (action, detail) == (
        "receipt",
        {"verified": False, "reason": "The receipt is for another envelope or content."},
    )


def _recipient_key(services) -> OKPKey:
    """A key of the recipient's own, registered for its receipts."""
    key = OKPKey.generate_key("Ed25519")
    jwks = {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}
    services.store.organisations.edit(ISLINGTON, {"jwks": jwks}, by=OPERATOR)
    return key


def _receipts_signed_by(key: OKPKey, header: dict, *, general: bool):
    def answer(request):
        receipt = {
            "envelope_id": request.headers["X-Caf-Envelope-Id"],
            "sha256": hashlib.sha256(request.body).hexdigest(),
        }
        members = [{"protected": header}] if general else {"protected": header}
        signed = joserfc_jws.serialize_json(members, json.dumps(receipt), key, algorithms=["EdDSA"])
        return 200, {"Content-Type": "application/jose+json"}, json.dumps(signed).encode()

    return answer


def test_a_receipt_in_the_general_json_serialization_is_verified(services, receiver):
    # RFC 7515's JSON serialization, as a recipient's library signs with a list of signers.
    # Before, checking it raised AttributeError: "Not checked" in the audit, a traceback logged.
    key = _recipient_key(services)
    header = {"alg": "EdDSA", "kid": key.thumbprint()}
    receiver.answer = _receipts_signed_by(key, header, general=True)
    event_id = _send(services, "general-receipt")

    _deliverer(services).deliver_due("test")

    assert audit_actions(services.store, event_id)[-1][1:] == (
        "receipt",
        {"verified": True, "kid": key.thumbprint(), "received_at": None},
    )


def test_a_receipt_naming_no_key_is_audited_with_no_kid(services, receiver):
    # Its recipient's only key verifies it; before, the audit named the key "None".
    key = _recipient_key(services)
    receiver.answer = _receipts_signed_by(key, {"alg": "EdDSA"}, general=False)
    event_id = _send(services, "receipt-without-kid")

    _deliverer(services).deliver_due("test")

    assert audit_actions(services.store, event_id)[-1][1:] == (
        "receipt",
        {"verified": True, "kid": None, "received_at": None},
    )


def test_a_receipt_that_is_not_a_jws_is_recorded_as_not_verified_saying_why(
    services, receiver, borough_key, caplog
):
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    receiver.answer = lambda request: (200, {"Content-Type": "application/jose+json"}, b"[]")
    event_id = _send(services, "array-receipt")

    with caplog.at_level(logging.INFO, logger="service.delivery"):
        _deliverer(services).deliver_due("test")

    assert services.store.transfers.view(event_id)["state"] == "delivered"
    _, action, detail = audit_actions(services.store, event_id)[-1]
    assert (action, detail["verified"]) == ("receipt", False)
    assert "not a JWS in JSON serialization" in detail["reason"]
    assert not [r for r in caplog.records if r.exc_info]


def _encoded(document: dict) -> str:
    text = json.dumps(document).encode()  # ASCII: an unpaired surrogate as its escape
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


# A receipt no database can store as it came, though its bytes on the wire are fine:
# verification quotes its header's kid, an unpaired surrogate that cannot be encoded (on every
# database); a NUL byte, which PostgreSQL's text columns refuse.
UNSTORABLE_RECEIPTS = {
    "unpaired surrogate in kid": json.dumps(
        {
            "protected": _encoded({"alg": "EdDSA", "kid": "\ud800"}),
            "payload": _encoded({}),
            "signature": "AAAA",
        }
    ).encode(),
    "NUL byte": b'{"payload": "\x00"}',
}


@pytest.mark.parametrize("body", UNSTORABLE_RECEIPTS.values(), ids=UNSTORABLE_RECEIPTS.keys())
def test_a_receipt_no_database_could_store_is_recorded_as_not_verified_with_every_delivery(
    services, receiver, borough_key, body
):
    # Before, the group's outcomes could not be recorded at all (the surrogate on every
    # database, the NUL byte on PostgreSQL): both envelopes would be sent again whenever their
    # claims ran out, forever, and no attempt ever recorded.
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    receiver.answer = lambda request: (200, {"Content-Type": "application/jose+json"}, body)
    first, second = _send(services, "odd-receipt-1"), _send(services, "odd-receipt-2", case="B")

    assert _deliverer(services).deliver_due("test") == 2

    assert len(receiver.requests) == 2
    for event_id in (first, second):
        view = services.store.transfers.view(event_id)
        assert view["state"] == "delivered"
        assert view["deliveries"][0]["receipt"] == body.decode().replace("\x00", "\ufffd")
        _, action, detail = audit_actions(services.store, event_id)[-1]
        assert action == "receipt" and detail["verified"] is False
        assert "\ud800" not in detail["reason"] and "\x00" not in detail["reason"]
    if b"kid" in body:
        assert "No key for kid: '\ufffd'" in detail["reason"]


def test_a_recipients_reason_phrase_and_receipt_time_with_a_nul_are_recorded_replaced(
    services, receiver, borough_key
):
    # Fails on PostgreSQL before the fix, whose text and JSONB refuse the NUL character.
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    receiver.respond_with(503)
    receiver.reason_phrase = "Busy\x00"
    receiver.answer = _signing_receipts(borough_key, received_at="2026-11-24T10:00:00Z\x00")
    event_id = _send(services, "nul-answers")

    assert _deliverer(services).deliver_due("test") == 2

    view = services.store.transfers.view(event_id)
    assert view["state"] == "delivered"
    assert view["deliveries"][0]["detail"].startswith("HTTP 503 Busy\ufffd from https://")
    receipt = audit_actions(services.store, event_id)[-1]
    assert receipt[1:] == (
        "receipt",
        {"verified": True, "kid": borough_key.kid, "received_at": "2026-11-24T10:00:00Z\ufffd"},
    )


@pytest.fixture
def attempts_refused(services):
    """``attempts_refused(rule)`` has the store refuse every delivery attempt whose row meets
    ``rule`` (SQL on the row's columns, each written ``{row}column``): a rule of the database
    (a constraint here) that the record of a delivery breaks each time it is tried, whatever
    the recipient does. It returns what lifts the rule, as an operator's fix would."""
    engine = sa.create_engine(services.settings.database_url)
    if engine.dialect.name == "postgresql":
        refuse = "ALTER TABLE delivery_attempts ADD CONSTRAINT refused CHECK (NOT ({rule}))"
        lift = "ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS refused"
        row = ""
    else:
        refuse = (
            "CREATE TRIGGER refused BEFORE INSERT ON delivery_attempts"
            " WHEN {rule} BEGIN SELECT RAISE(ABORT, 'refused by rule'); END"
        )
        lift = "DROP TRIGGER IF EXISTS refused"
        row = "NEW."

    def lifted() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(lift))

    def refusing(rule: str) -> Callable[[], None]:
        with engine.begin() as conn:
            conn.execute(sa.text(refuse.format(rule=rule.format(row=row))))
        return lifted

    try:
        yield refusing
    finally:
        lifted()
        engine.dispose()


def _short_lease_deliverer(services) -> Deliverer:
    """Leases of 0.2 s, so that a test's passes 0.3 s apart would send again what was left
    unrecorded."""
    return Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(),
        lease=timedelta(milliseconds=200),
        clock=services.clock,
    )


def _each_sent_once_over_three_leases(services, receiver, refused: str, fine: str) -> Deliverer:
    """Deliver three times, each past the leases the last held: ``refused`` (whose record the
    database refuses) and ``fine`` each reach the recipient once, and ``fine`` is delivered."""
    deliverer = _short_lease_deliverer(services)
    for _ in range(3):
        deliverer.deliver_due("test")
        time.sleep(0.3)  # past any lease the first delivery held
    assert sorted(event_ids(receiver.requests)) == [fine, refused]
    assert services.store.transfers.view(fine)["state"] == "delivered"
    return deliverer


def test_a_delivery_whose_receipt_the_store_refuses_is_delivered_once_without_it(
    services, receiver, borough_key, attempts_refused
):
    # Before, the group's record was refused as a whole, every time: its envelopes were sent
    # again whenever their leases ran out, forever, with no attempt recorded and nothing on the
    # audit or /metrics to say why.
    attempts_refused("length({row}receipt) > 100")
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    signing = _signing_receipts(borough_key)
    receiver.answer = lambda request: (
        signing(request) if request.envelope["event_id"] == "unrecordable" else (202, {}, b"")
    )
    refused, fine = _send(services, "unrecordable"), _send(services, "recordable", case="B")
    _each_sent_once_over_three_leases(services, receiver, refused, fine)
    view = services.store.transfers.view(refused)
    assert view["state"] == "delivered" and view["outbox"] is None
    (attempt,) = view["deliveries"]
    assert attempt["succeeded"] and attempt["receipt"] is None
    assert attempt["detail"].startswith("HTTP 200 from https://")
    assert "recorded without its receipt, as the database refused it (" in attempt["detail"]
    assert _actions(services, refused)[-1] == "delivered"


def test_a_delivery_the_store_will_not_record_is_failed_once_not_sent_again_each_lease(
    services, receiver, attempts_refused
):
    refused, fine = _send(services, "unrecordable"), _send(services, "recordable", case="B")
    envelope_id = services.store.transfers.view(refused)["envelope"]["envelope_id"]
    lift = attempts_refused(f"{{row}}envelope_id = '{envelope_id}' AND {{row}}succeeded")
    deliverer = _each_sent_once_over_three_leases(services, receiver, refused, fine)
    view = services.store.transfers.view(refused)
    assert view["state"] == "failed" and view["outbox"] is None
    (attempt,) = view["deliveries"]
    assert not attempt["succeeded"] and attempt["receipt"] is None
    assert attempt["detail"].startswith("Delivered (HTTP 202 from https://")
    assert "but the database refused to record it (IntegrityError" in attempt["detail"]
    _, action, detail = audit_actions(services.store, refused)[-1]
    assert action == "failed"
    assert detail["gave_up"].startswith("the database refused to record its outcome")
    client = create_app(services).test_client()
    metrics = client.get("/metrics", headers=bearer(services, "admin")).get_data(as_text=True)
    assert 'caf_relay_transfers{state="failed"} 1.0' in metrics

    lift()
    # What ``caf-relay transfer redeliver`` does, on the test's clock.
    auth = bearer(services, "admin", ISLINGTON)
    assert client.post(f"/api/v1/transfers/{refused}/redeliver", headers=auth).status_code == 202
    assert deliverer.deliver_due("test") == 1
    assert services.store.transfers.view(refused)["state"] == "delivered"
    sent = [r.headers["X-Caf-Envelope-Id"] for r in receiver.requests]
    assert sent.count(envelope_id) == 2


def test_a_delivery_whose_receipt_the_store_refuses_is_not_parked_when_its_isp_is_suspended(
    services, receiver, borough_key, attempts_refused
):
    """The envelope arrived, in flight when its ISP was suspended, but the database refused its
    record. Failed, as an attempt in flight that fails is, it was parked: the audit said its
    basis was withdrawn and a practitioner was asked for a judgement on a case its recipient
    holds, which, to share, would send it again in a new envelope."""
    attempts_refused("length({row}receipt) > 100")
    services.store.organisations.edit(ISLINGTON, {"jwks": borough_key.jwks()}, by=OPERATOR)
    receiver.answer = _signing_receipts(borough_key)
    withdrawing.send(services, "arrived-unrecorded")
    in_flight = withdrawing.claim(services, timedelta(minutes=2))
    client = create_app(services).test_client()
    suspended = client.post(
        "/api/v1/isps/pan-london-caf/suspend",
        json={"reason": "Breach under investigation."},
        headers=bearer(services, "admin", "E09000012"),
    )
    assert suspended.status_code == 201

    assert withdrawing.deliverer(services).deliver_group(in_flight).results == ["delivered"]

    assert event_ids(receiver.requests) == ["arrived-unrecorded"]
    assert services.store.transfers.view("arrived-unrecorded")["state"] == "delivered"
    assert "basis_withdrawn" not in _actions(services, "arrived-unrecorded")


def test_an_adapter_changed_by_an_admin_is_used_from_the_next_delivery(
    services, receiver, tmp_path
):
    # The borough moves to a new endpoint: envelopes sent afterwards must go there, not to the
    # endpoint the relay had open, with no restart.
    before = _send(services, "before-the-change")
    assert _deliverer(services).deliver_due("test") == 1
    inbox = tmp_path / "islington-inbox"
    services.store.organisations.set_adapter(ISLINGTON, "directory", {"path": str(inbox)}, {})
    after = _send(services, "after-the-change")

    assert _deliverer(services).deliver_due("test") == 1

    assert event_ids(receiver.requests) == [before]
    (written,) = inbox.glob("*.json")
    assert written.name == f"{outbound(services.store, after).envelope_id}.json"
    assert services.store.transfers.view(after)["deliveries"][0]["adapter_type"] == "directory"


def test_a_case_reaches_its_recipient_in_order_while_other_cases_go_ahead(services, receiver):
    first, second, third = (_send(services, f"case-a-{n}", case="CASE-A") for n in (1, 2, 3))
    other = _send(services, "case-b-1", case="CASE-B")
    failures, accepted = {first: 2}, []

    def answer(request):
        event_id = request.envelope["event_id"]
        if failures.get(event_id):
            failures[event_id] -= 1
            return 503, {}, b""
        accepted.append(event_id)
        return 202, {}, b""

    receiver.answer = answer
    _deliverer(services, max_attempts=5).deliver_due("test")

    assert [e for e in accepted if e.startswith("case-a")] == [first, second, third]
    assert accepted.index(other) < accepted.index(first), "case B waited for case A"


def _one_thread_loop(services, worker: str, **options) -> DeliveryLoop:
    """A loop with one delivery thread, which a recipient that hangs keeps busy."""
    return DeliveryLoop(
        services.store,
        services.deliverer,
        worker=worker,
        threads=1,
        per_recipient=1,
        clock=services.clock,
        **options,
    )


def _running(loop: DeliveryLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    wait_until(lambda: loop.lease() is not None)
    return thread


def test_intake_hands_over_what_can_go_at_once_and_a_case_still_arrives_in_order(
    services, receiver
):
    loop = services.delivery_loop()
    thread = _running(loop)
    bodies = [
        examples.encode(examples.routine(event_id, case=case))
        for event_id, case in (("a-1", "CASE-A"), ("a-2", "CASE-A"), ("b-1", "CASE-B"))
    ]
    try:
        outcomes = services.relay.receive_many(
            [(body, EMBEDDED) for body in bodies], lease=loop.lease()
        )
        held = [o.held for o in outcomes if o.held is not None]
        assert [c.envelope.event_id for c in held] == ["a-1", "b-1"], "a-2 waits for a-1"
        loop.take(held)
        loop.wake()
        receiver.wait_for(3)
    finally:
        loop.stop()
        thread.join(15)
    arrived = event_ids(receiver.requests)
    assert sorted(arrived) == ["a-1", "a-2", "b-1"]
    assert arrived.index("a-1") < arrived.index("a-2")


def test_a_running_loop_retries_its_own_failed_delivery_when_due_not_at_its_idle_poll(
    services, receiver
):
    receiver.respond_with(503)
    deliverer = Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=1)),
        lease=services.settings.delivery_lease,
        clock=services.clock,
        jitter=lambda: 1.0,  # the retry is due a second after the failure
    )
    loop = DeliveryLoop(
        services.store,
        deliverer,
        worker="retrying",
        threads=2,
        per_recipient=1,
        clock=services.clock,
        idle_poll_seconds=60,
    )
    thread = _running(loop)
    try:
        (outcome,) = services.relay.receive_many(
            [(examples.encode(examples.routine("retried-by-loop", to=ISLINGTON)), EMBEDDED)],
            lease=loop.lease(),
        )
        loop.take([outcome.held])
        receiver.wait_for(2, timeout=10)
    finally:
        loop.stop()
        thread.join(15)
    view = services.store.transfers.view("retried-by-loop")
    assert [d["succeeded"] for d in view["deliveries"]] == [False, True]


def test_a_stopping_worker_gives_back_what_it_was_handed_and_had_not_sent(services, receiver):
    release = threading.Event()

    def answer(request):
        if request.path.endswith(ISLINGTON):
            release.wait(10)
        return 202, {}, b""

    receiver.answer = answer
    loop = _one_thread_loop(services, "stopping")
    thread = _running(loop)
    for event_id, to in (("to-islington", ISLINGTON), ("to-camden", CAMDEN)):
        (outcome,) = services.relay.receive_many(
            [(examples.encode(examples.routine(event_id, to=to, case=event_id)), EMBEDDED)],
            lease=loop.lease(),
        )
        loop.take([outcome.held])
        if to == ISLINGTON:
            wait_until(lambda: len(receiver.requests) == 1)  # the one thread hangs on it
    loop.stop()
    release.set()
    thread.join(15)

    assert event_ids(receiver.requests) == ["to-islington"]
    # Not held until the lease runs out: another worker can take it at once.
    _deliverer(services).deliver_due("another")
    assert event_ids(receiver.requests) == ["to-islington", "to-camden"]


def test_past_its_held_limit_a_loop_gives_hand_overs_back_for_any_worker_to_claim(
    services, receiver
):
    release = threading.Event()
    answered = []

    def answer(request):
        answered.append(request)
        if len(answered) == 1:  # the loop's one thread hangs on its first delivery
            release.wait(10)
        return 202, {}, b""

    receiver.answer = answer
    loop = _one_thread_loop(services, "swamped", held_limit=2)
    thread = _running(loop)
    try:
        bodies = [examples.encode(examples.routine(f"swamp-{n}", case=f"S-{n}")) for n in range(6)]
        (first,) = services.relay.receive_many([(bodies[0], EMBEDDED)], lease=loop.lease())
        loop.take([first.held])
        wait_until(lambda: len(answered) == 1)
        outcomes = services.relay.receive_many(
            [(body, EMBEDDED) for body in bodies[1:]], lease=loop.lease()
        )
        loop.take([o.held for o in outcomes])

        # Two wait in memory for the thread; the other three are the outbox's again at once.
        _deliverer(services).deliver_due("another")
        assert sorted(event_ids(receiver.requests)[1:]) == ["swamp-3", "swamp-4", "swamp-5"]
    finally:
        release.set()
        loop.stop()
        thread.join(15)
    _deliverer(services).deliver_due("another")  # the two it held, given back as it stopped
    assert sorted(event_ids(receiver.requests)) == [f"swamp-{n}" for n in range(6)]


def test_a_recipient_that_hangs_does_not_hold_up_another(services, receiver):
    # More waiting for the hanging recipient than a claim looks at, all received first.
    slow = [_send(services, f"to-islington-{n}", case=f"I-{n}") for n in range(40)]
    fast = [_send(services, f"to-camden-{n}", case=f"C-{n}", to=CAMDEN) for n in range(4)]
    release = threading.Event()
    finished: list[str] = []

    def answer(request):
        if request.path.endswith(ISLINGTON):
            release.wait(120)  # well past the test's own wait, so it cannot end first
        finished.append(request.envelope["event_id"])
        return 202, {}, b""

    receiver.answer = answer
    loop = services.delivery_loop()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: set(fast) <= set(finished), timeout=60)
        # The adapter gives up on Islington's hanging attempts after its 30 s read timeout;
        # none has ended, so Camden's did not wait for their threads.
        assert not [d for e in slow for d in services.store.transfers.view(e)["deliveries"]], (
            "Camden's deliveries waited for Islington's"
        )
        assert not set(slow) & set(finished)
        release.set()
        receiver.wait_for(len(slow) + len(fast))
        wait_until(
            lambda: {services.store.transfers.view(e)["state"] for e in slow} == {"delivered"}
        )
    finally:
        release.set()
        loop.stop()
        thread.join(15)


def _claimed_then_taken_over(services) -> tuple[Claimed, Claimed]:
    """The outbox's one item claimed by a slow worker, then, its lease run out, by a quick one."""
    outbox, lease = services.store.outbox, timedelta(minutes=2)
    start = services.clock()
    (slow,) = outbox.claim(
        worker="slow", now=start, lease=lease, limit=1, per_recipient=1, in_flight={}
    )
    (quick,) = outbox.claim(
        worker="quick", now=start + lease * 2, lease=lease, limit=1, per_recipient=1, in_flight={}
    )
    return slow, quick


def test_a_worker_whose_claim_ran_out_does_not_undo_the_new_holders_work(services, receiver):
    event_id = _send(services, "stale-claim")
    stale, fresh = _claimed_then_taken_over(services)
    deliverer = _deliverer(services)

    assert deliverer.deliver(fresh) == "delivered"
    receiver.respond_with(400)
    assert deliverer.deliver(stale) == "failed"

    assert services.store.transfers.view(event_id)["state"] == "delivered"
    *_, (_, action, detail) = audit_actions(services.store, event_id)
    assert (action, detail["claim_lost"]) == ("delivery_failed", True)


def test_a_late_record_of_a_delivery_leaves_the_transfer_queued_after_it_to_be_sent(
    services, receiver
):
    """The slow worker's envelope is delivered by the quick one and its item gone; the next
    transfer's item takes its place (on SQLite, its very id). The slow worker's record of its
    own delivery, late, must not take that item out: the next transfer would never be sent."""
    _send(services, "first", case="C-1")
    slow, quick = _claimed_then_taken_over(services)
    deliverer = _deliverer(services)
    assert deliverer.deliver(quick) == "delivered"
    _send(services, "next", case="C-2")

    assert deliverer.deliver(slow) == "delivered"
    assert deliverer.deliver_due("test") == 1
    assert event_ids(receiver.requests) == ["first", "first", "next"]
    assert services.store.transfers.view("next")["state"] == "delivered"


def test_a_late_record_of_a_delivery_takes_out_the_redelivery_of_the_same_envelope(
    services, receiver
):
    """The envelope has arrived after all: sending it again would only repeat it."""
    event_id = _send(services, "redelivered")
    slow, quick = _claimed_then_taken_over(services)
    deliverer = _deliverer(services)
    receiver.respond_with(400)
    assert deliverer.deliver(quick) == "failed"
    assert services.store.outbox.redeliver(event_id, services.clock(), OPERATOR)

    assert deliverer.deliver(slow) == "delivered"
    assert services.store.transfers.view(event_id)["state"] == "delivered"
    assert deliverer.deliver_due("test") == 0, "nothing left to send"
    assert len(receiver.requests) == 2


def test_two_delivery_workers_never_send_the_same_envelope_twice(services, receiver):
    sent = [_send(services, f"shared-{n}", case=f"S-{n}") for n in range(60)]
    loops = [
        DeliveryLoop(
            services.store,
            services.deliverer,
            worker=f"worker-{n}",
            threads=4,
            per_recipient=4,
            clock=services.clock,
        )
        for n in (1, 2)
    ]
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        receiver.wait_for(len(sent), timeout=30)
        time.sleep(0.3)
    finally:
        for loop in loops:
            loop.stop()
        for thread in threads:
            thread.join(15)
    assert sorted(event_ids(receiver.requests)) == sorted(sent)


def test_metrics_show_failed_transfers_and_how_long_the_outbox_has_waited(services, receiver):
    began = services.clock()
    _send(services, "metric-failed")
    _send(services, "metric-waiting", case="CASE-W")
    receiver.respond_with(400)
    _deliverer(services).deliver(
        services.store.outbox.claim(
            worker="test",
            now=services.clock(),
            lease=timedelta(minutes=2),
            limit=1,
            per_recipient=1,
            in_flight={},
        )[0]
    )

    client = create_app(services).test_client()
    metrics = client.get("/metrics", headers=bearer(services, "auditor", ISLINGTON)).get_data(
        as_text=True
    )
    assert 'caf_relay_transfers{state="failed"} 1.0' in metrics
    assert 'caf_relay_transfers{state="signed"} 1.0' in metrics
    assert "caf_relay_outbox_pending 1.0" in metrics
    oldest = next(
        line for line in metrics.splitlines() if line.startswith("caf_relay_outbox_oldest_seconds")
    )
    assert 0 < float(oldest.split()[1]) <= (services.clock() - began).total_seconds()


def test_an_envelope_handed_over_at_intake_follows_its_recipients_own_retry_settings(
    services, receiver
):
    setting = services.store.organisations.adapter_setting(ISLINGTON)
    services.store.organisations.set_adapter(
        ISLINGTON, "https", setting.settings, setting.secrets, retry={"max_attempts": 1}
    )
    receiver.respond_with(503)
    lease = Lease("intake", services.clock() + timedelta(minutes=1))
    body = examples.encode(examples.routine("own-retry"))

    (outcome,) = services.relay.receive_many([(body, EMBEDDED)], lease=lease)

    # The service's default allows 3 attempts; Islington's own setting allows 1.
    assert _deliverer(services).deliver_group([outcome.held]).results == ["failed"]
    assert services.store.transfers.view("own-retry")["state"] == "failed"


def test_an_unusable_adapter_is_a_retried_failure_that_holds_up_no_other_recipient(
    services, receiver, tmp_path
):
    services.store.organisations.set_adapter(
        SOUTHWARK, "directory", {"path": str(tmp_path / "southwark")}, {}
    )
    engine = sa.create_engine(services.store.url)
    with engine.begin() as conn:  # as after a lost secrets key, and an adapter uninstalled
        sealed_elsewhere = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
        conn.execute(
            sa.text("UPDATE adapter_configs SET secrets_sealed = :s WHERE authority_code = :a"),
            {"s": sealed_elsewhere, "a": CAMDEN},
        )
        conn.execute(
            sa.text("UPDATE adapter_configs SET adapter_type = :t WHERE authority_code = :a"),
            {"t": "carrier-pigeon", "a": SOUTHWARK},
        )
    stored_before_the_rule = {"url": f"{receiver.url}/{WESTMINSTER}?token=t0ken-in-the-url"}
    services.store.organisations.set_adapter(WESTMINSTER, "directory", {"path": "/tmp/x"}, {})
    with engine.begin() as conn:  # as stored by a release that allowed a query in the URL
        conn.execute(
            t.AdapterConfig.__table__.update()
            .where(t.AdapterConfig.authority_code == WESTMINSTER)
            .values(adapter_type="https", settings=stored_before_the_rule)
        )
    engine.dispose()
    sent = {
        to: _send(services, f"to-{to}", case=f"CAF-{to}", to=to)
        for to in (CAMDEN, SOUTHWARK, WESTMINSTER, ISLINGTON)
    }

    _deliverer(services, max_attempts=2).deliver_due("test")

    assert event_ids(receiver.requests) == [sent[ISLINGTON]]
    assert services.store.transfers.view(sent[ISLINGTON])["state"] == "delivered"
    for to, reason in (
        (CAMDEN, "Adapter not usable: Stored adapter secrets cannot be decrypted"),
        (SOUTHWARK, "Adapter not usable: Unknown adapter type 'carrier-pigeon'"),
        (WESTMINSTER, "Adapter not usable: Invalid https adapter configuration."),
    ):
        view = services.store.transfers.view(sent[to])
        assert view["state"] == "failed", to
        assert [d["detail"].startswith(reason) for d in view["deliveries"]] == [True, True], to
    westminster = services.store.transfers.view(sent[WESTMINSTER])["deliveries"][-1]["detail"]
    assert "Must have no query or fragment" in westminster
    assert "t0ken-in-the-url" not in westminster


class _ContractBreaker(GroupAdapter):
    """A test double for a borough's own adapter package, which is not installed here: it
    delivers each envelope whose event id starts "fine", and answers for any other with
    ``outcome()``, which breaks the port's contract (``adapters/base.py``)."""

    settings_schema = Schema
    secrets_schema = Schema

    @classmethod
    def from_config(cls, settings, secrets):
        return cls()

    @staticmethod
    def outcome() -> object:
        raise NotImplementedError

    def deliver_group(self, envelopes):
        return [
            Receipt("HTTP 200") if envelope.event_id.startswith("fine") else self.outcome()
            for envelope in envelopes
        ]


class ReceiptSignedInBytes(_ContractBreaker):
    @staticmethod
    def outcome():
        return Receipt("HTTP 200", signed=b'{"payload": "..."}')


class FailureWithAnExceptionForItsReason(_ContractBreaker):
    @staticmethod
    def outcome():
        return DeliveryFailed(ConnectionResetError("reset by peer"), retryable=True)


class StatusNotReceipt(_ContractBreaker):
    @staticmethod
    def outcome():
        return {"status": 200}


BREAKERS = {
    "signed-in-bytes": ReceiptSignedInBytes,
    "exception-reason": FailureWithAnExceptionForItsReason,
    "status-not-receipt": StatusNotReceipt,
}


@pytest.mark.parametrize(
    ("adapter_type", "reason"),
    [
        ("signed-in-bytes", "returned a Receipt whose signed is bytes, not str"),
        ("exception-reason", "failed with a reason that is ConnectionResetError, not str"),
        ("status-not-receipt", "returned dict, not a Receipt"),
    ],
)
def test_an_adapter_breaking_its_contract_fails_that_envelope_saying_how_and_no_other(
    services, tmp_path, monkeypatch, adapter_type, reason
):
    """Its outcome is a failed attempt (as returning None is), retried until the transfer is
    failed for an admin to see; not an error that leaves the whole group unrecorded, to be sent
    again, the envelope it delivered too, at every lease."""
    install_adapters(
        tmp_path / "site-packages",
        monkeypatch,
        "caf-relay-borough-adapters",
        {kind: f"{__name__}:{cls.__name__}" for kind, cls in BREAKERS.items()},
    )
    services.store.add_isp(examples.pan_london_isp())
    services.store.organisations.set_adapter(CAMDEN, adapter_type, {}, {})
    fine = _send(services, "fine", case="CAF-CM-1", to=CAMDEN)
    broken = _send(services, "broken", case="CAF-CM-2", to=CAMDEN)

    assert _deliverer(services, max_attempts=2).deliver_due("test") == 3

    assert services.store.transfers.view(fine)["state"] == "delivered"
    view = services.store.transfers.view(broken)
    assert view["state"] == "failed"
    said = f"Adapter error: the {adapter_type!r} adapter {reason}."
    assert [d["detail"] for d in view["deliveries"]] == [said, said]


class PostsWithRequests(GroupAdapter):
    """A test double for a borough's own adapter package: it posts each envelope with
    requests, its token as read from the borough's file, line break and all, and lets what
    requests raises go by, as a simple adapter does."""

    settings_schema = Schema.from_dict({"url": fields.String()})
    secrets_schema = Schema.from_dict({"token": fields.String()})

    def __init__(self, url: str, token: str) -> None:
        self._url, self._token = url, token

    @classmethod
    def from_config(cls, settings, secrets):
        return cls(settings["url"], secrets["token"])

    def deliver_group(self, envelopes):
        for envelope in envelopes:
            requests.post(
                self._url, data=envelope.jws, headers={"Authorization": f"Bearer {self._token}"}
            )
        return [Receipt("HTTP 202") for _ in envelopes]


def test_an_adapter_that_raises_is_logged_by_type_and_place_not_its_words(
    services, receiver, tmp_path, monkeypatch, caplog
):
    """requests refuses the token's line break with an error quoting the whole header: logged
    as it was, the borough's token was in the relay's log, and an error quoting the envelope
    would put the child's record there."""
    install_adapters(
        tmp_path / "site-packages",
        monkeypatch,
        "caf-relay-borough-adapters",
        {"posts-with-requests": f"{__name__}:PostsWithRequests"},
    )
    token = "borough-token-0f9e8d7c6b5a"
    services.store.organisations.set_adapter(
        CAMDEN, "posts-with-requests", {"url": f"{receiver.url}/{CAMDEN}"}, {"token": f"{token}\n"}
    )
    event_id = _send(services, "raises", case="CAF-CM-3", to=CAMDEN)

    with caplog.at_level(logging.INFO, logger="service.delivery"):
        _deliverer(services).deliver_due("test")

    assert receiver.requests == []
    detail = services.store.transfers.view(event_id)["deliveries"][-1]["detail"]
    assert detail == "Adapter error: the 'posts-with-requests' adapter raised InvalidHeader."
    raised = [caplog.handler.format(r) for r in caplog.records if "adapter raised" in r.msg]
    assert raised  # each attempt's, saying what was raised and where
    for line in raised:
        assert "adapter raised InvalidHeader" in line
        assert f"{__name__.replace('.', '/')}.py" in line and "in deliver_group" in line
    assert token not in caplog.text
    assert "Okafor" not in caplog.text


@pytest.fixture
def islington_on_amqp(services, broker_url):
    """Islington receives on a queue of its broker that takes two messages at most, refusing
    (nacking) any that would make it longer."""
    services.store.add_isp(examples.pan_london_isp())
    parts = urlsplit(broker_url)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.exchange_declare("islington", "direct", durable=True)
    channel.queue_delete("islington.inbox")
    channel.queue_declare(
        "islington.inbox",
        durable=True,
        arguments={"x-max-length": 2, "x-overflow": "reject-publish"},
    )
    channel.queue_bind("islington.inbox", "islington", "caf")
    services.store.organisations.set_adapter(
        ISLINGTON,
        "amqp",
        {
            "url": f"amqp://{parts.hostname}:{parts.port}{parts.path}",
            "exchange": "islington",
            "routing_key": "caf",
        },
        {"username": "guest", "password": "guest"},
    )

    def received() -> list[str]:
        ids = []
        while (message := channel.basic_get("islington.inbox", auto_ack=True))[0]:
            ids.append(message[1].message_id)
        return ids

    yield received
    channel.queue_delete("islington.inbox")
    connection.close()


def test_a_group_for_a_broker_goes_at_once_and_each_envelope_keeps_its_own_outcome(
    services, islington_on_amqp
):
    sent = [_send(services, f"grouped-{n}", case=f"CAF-HK-2026-01{n:02d}") for n in range(4)]

    assert _deliverer(services, max_attempts=1).deliver_due("test") == 4

    envelope_ids = [services.store.transfers.view(e)["envelope"]["envelope_id"] for e in sent]
    assert islington_on_amqp() == envelope_ids[:2]
    views = [services.store.transfers.view(event_id) for event_id in sent]
    assert [view["state"] for view in views] == ["delivered"] * 2 + ["failed"] * 2
    (refused,) = views[2]["deliveries"]
    assert "refused the envelope" in refused["detail"] and refused["succeeded"] is False
    # One attempt for the group: the broker confirmed all four at once.
    assert len({view["deliveries"][0]["attempted_at"] for view in views}) == 1


@pytest.fixture
def camden_on_amqp(services, broker_url, receiver):
    """Camden receives on its broker (the test vhost, through a proxy that can stop its
    answers); Islington, over https, on ``receiver``."""
    parts = urlsplit(broker_url)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.exchange_declare("camden", "direct", durable=True)
    channel.queue_declare("camden.inbox", durable=True)
    channel.queue_bind("camden.inbox", "camden", "caf")
    with tcp_proxy(BROKER_HOST, parts.port or 5672) as proxy:
        settings = {
            "url": f"amqp://127.0.0.1:{proxy.port}{parts.path}",
            "exchange": "camden",
            "routing_key": "caf",
        }
        services.store.organisations.set_adapter(CAMDEN, "amqp", settings, GUEST)
        yield proxy, settings
    channel.queue_delete("camden.inbox")
    channel.exchange_delete("camden")
    connection.close()


GUEST = {"username": "guest", "password": "guest"}


def _claim(services, *event_ids):
    claimed = services.store.outbox.claim(
        worker="test",
        now=services.clock(),
        lease=timedelta(minutes=2),
        limit=32,
        per_recipient=32,
        in_flight={},
    )
    return [item for item in claimed if item.envelope.event_id in event_ids]


def test_a_group_that_read_its_adapter_before_it_changed_does_not_close_the_new_one_in_use(
    services, camden_on_amqp, monkeypatch
):
    """Two delivery threads: one took Camden's new adapter, the other read when Camden's adapter
    was set just before the change, and asks the cache after the first. It must not replace
    (and close) the adapter the first is about to publish on."""
    _, settings = camden_on_amqp
    before = services.store.adapter_updated_at(CAMDEN)
    services.store.organisations.set_adapter(CAMDEN, "amqp", settings, GUEST)  # e.g. a rotation
    _send(services, "fresh", case="C-2", to=CAMDEN)
    (fresh,) = _claim(services, "fresh")

    _, in_use = services.adapters.get(services.store, CAMDEN)
    monkeypatch.setattr(services.store, "adapter_updated_at", lambda authority: before)
    _, for_stale = services.adapters.get(services.store, CAMDEN)
    assert isinstance(in_use.deliver(fresh.envelope), Receipt)
    assert for_stale is in_use


@pytest.mark.parametrize("change", ["moved", "removed"])
def test_an_envelope_claimed_before_its_recipients_adapter_changed_is_not_sent_the_old_way(
    services, receiver, tmp_path, change
):
    """Islington's admin moves its endpoint, or removes its adapter, while an envelope to it is
    claimed (or handed over at intake) and the old adapter is in use: a delivery that starts
    after the change must not go to the old endpoint."""
    _send(services, "before", case="C-1")
    assert _deliverer(services).deliver_due("test") == 1  # Islington's adapter, built, in use
    _send(services, "claimed", case="C-2")
    claimed = _claim(services, "claimed")

    with HttpsReceiver(tmp_path / "moved") as moved:
        if change == "moved":
            services.store.organisations.set_adapter(
                ISLINGTON,
                "https",
                {"url": f"{moved.url}/{ISLINGTON}", "ca_bundle": str(moved.ca_bundle)},
                {"bearer_token": "token-for-the-new-endpoint"},
                by=OPERATOR,
            )
        else:
            services.store.organisations.remove_adapter(ISLINGTON, by=OPERATOR)
        outcome = _deliverer(services).deliver_group(claimed).results

    assert event_ids(receiver.requests) == ["before"], "nothing sent the old way"
    (attempt,) = services.store.transfers.view("claimed")["deliveries"]
    if change == "moved":
        assert outcome == ["delivered"]
        assert event_ids(moved.requests) == ["claimed"]
        assert attempt["detail"] == f"HTTP 202 from {moved.url}/{ISLINGTON}"
    else:
        assert outcome == ["retry"]
        assert attempt["detail"] == f"Adapter not usable: No adapter is configured for {ISLINGTON}."


def test_replacing_an_adapter_whose_broker_is_stuck_holds_up_no_other_recipient(
    services, camden_on_amqp, monkeypatch
):
    """Camden's broker stops answering mid-group while an admin changes Camden's adapter: the
    wait to close the old adapter (its group's attempt, then the close) must not stall the
    delivery threads of every other recipient, as Islington's here."""
    # Attempts of 3 s (85 s in production), which leave time to open a connection.
    monkeypatch.setattr(AmqpAdapter.__init__, "__kwdefaults__", {"attempt_seconds": 3.0})
    monkeypatch.setattr(amqp, "OPEN_SECONDS", 1)
    proxy, settings = camden_on_amqp
    for event_id, case in (("opens", "C-0"), ("stuck", "C-1")):
        _send(services, event_id, case=case, to=CAMDEN)
    deliverer = _deliverer(services)
    assert deliverer.deliver_group(_claim(services, "opens")).results == ["delivered"]
    stuck = _claim(services, "stuck")
    proxy.hold_answers()
    first = threading.Thread(target=deliverer.deliver_group, args=(stuck,), daemon=True)
    first.start()
    time.sleep(0.5)  # its group published, waiting for confirms that will not come

    services.store.organisations.set_adapter(CAMDEN, "amqp", settings, GUEST)
    _send(services, "after-change", case="C-2", to=CAMDEN)
    second = threading.Thread(
        target=deliverer.deliver_group, args=(_claim(services, "after-change"),), daemon=True
    )
    second.start()  # rebuilds Camden's adapter, closing the one the first group holds
    time.sleep(0.3)
    _send(services, "to-islington", case="I-1")
    to_islington = _claim(services, "to-islington")
    started = time.monotonic()
    assert deliverer.deliver_group(to_islington).results == ["delivered"]
    took = time.monotonic() - started
    first.join(15)
    second.join(15)

    assert took < 1.5, f"Islington's delivery waited {took:.1f} s for Camden's adapter to close"
    assert services.store.transfers.view("stuck")["state"] == "signed"  # retried, not lost
