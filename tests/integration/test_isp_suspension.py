"""Suspending an ISP withdraws the envelopes signed under it that are not yet delivered: their
transfers wait for a practitioner's judgement again, unless a delivery process holds them; and
so against deliveries in flight, redeliveries and late deliveries, and in what the audit index
and the subject-access export make of a withdrawn or reinstated basis."""

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from html import escape

import pytest

from service.access import OPERATOR
from service.relay import REFERENCE_TRIES
from service.senders import EMBEDDED
from service.store.outbox import Lease
from service.subject_access import render_html
from service.web import create_app
from tests.support import examples, judgements, withdrawing
from tests.support.amqp import wait_until
from tests.support.children import child, transfer_of
from tests.support.https_receiver import event_ids, https_recipients
from tests.support.read_only import refusing_changes
from tests.support.store_reads import audit_actions
from tests.support.tampering import rewrite_transfer
from tests.support.tokens import bearer, reader

HACKNEY, ISLINGTON = "E09000012", "E09000019"
ISP = "/api/v1/isps/pan-london-caf"


@pytest.fixture
def receiver(services, tmp_path):
    with https_recipients(services, tmp_path, ISLINGTON) as running:
        yield running


@pytest.fixture
def client(services):
    return create_app(services).test_client()


def _suspend(services, client) -> dict:
    response = client.post(
        f"{ISP}/suspend",
        json={"reason": "Breach under investigation."},
        headers=bearer(services, "admin", HACKNEY),
    )
    assert response.status_code == 201, response.get_json()
    (suspended,) = [d for _, a, d in audit_actions(services.store, None) if a == "isp_suspended"]
    return suspended


def _share() -> dict:
    """Hackney's practitioner shares the child's identity with Islington after all."""
    document = judgements.share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    document["practitioner"]["organisation"] = HACKNEY
    return document


def test_an_envelope_retrying_at_the_suspension_is_never_sent_and_a_judgement_sends_its_own(
    services, receiver, client
):
    withdrawing.send(services, "retrying")
    receiver.respond_with(503)
    assert withdrawing.deliverer(services).deliver_due("test") == 1
    signed_under_isp = services.store.transfers.view("retrying")["envelope"]["envelope_id"]

    assert _suspend(services, client)["parked"] == 1
    # The recipient is back and the retry falls due: nothing is sent under the suspended ISP.
    time.sleep(1.1)
    assert withdrawing.deliverer(services).deliver_due("test") == 0
    assert len(receiver.requests) == 1

    view = client.get(
        "/api/v1/transfers/retrying", headers=bearer(services, "practitioner", HACKNEY)
    ).get_json()
    assert (view["state"], view["envelope"], view["outbox"]) == ("awaiting_judgement", None, None)
    assert "suspended" in view["decision"]["reason"] and "isp" not in view["decision"]
    (withdrawn,) = withdrawing.withdrawn(services, "retrying")
    ended = (withdrawn["isp_id"], withdrawn["version"], withdrawn["ended_by_version"])
    assert ended == ("pan-london-caf", 1, 2) and withdrawn["status"] == "suspended"
    assert (withdrawn["by"]["role"], withdrawn["by"]["authority"]) == ("admin", HACKNEY)
    assert (withdrawn["reason"], withdrawn["envelope_id"], withdrawn["was"]) == (
        "Breach under investigation.",
        signed_under_isp,
        "signed",
    )
    assert view["timeline"][-1]["action"] == "basis_withdrawn"
    parked = client.get(
        "/api/v1/transfers",
        query_string={"state": "awaiting_judgement"},
        headers=bearer(services, "practitioner", HACKNEY),
    ).get_json()["transfers"]
    assert [(t["event_id"], t["basis"]) for t in parked] == [("retrying", "none")]
    assert services.store.operations.transfers_by_basis() == {"none": 1}

    judged = client.post(
        "/api/v1/transfers/retrying/judgement",
        json=_share(),
        headers=bearer(services, "practitioner", HACKNEY),
    )
    assert judged.status_code == 200, judged.get_json()
    assert withdrawing.deliverer(services).deliver_due("test") == 1
    (_, sent) = receiver.requests
    assert sent.envelope["basis"]["kind"] == "judgement"
    assert sent.envelope["envelope_id"] != signed_under_isp
    view = services.store.transfers.view("retrying")
    assert view["state"] == "delivered"
    assert view["envelope"]["envelope_id"] == sent.envelope["envelope_id"]


def test_a_failed_transfer_under_the_isp_is_parked_and_cannot_be_redelivered(
    services, receiver, client
):
    withdrawing.send(services, "failed")
    receiver.respond_with(400)
    withdrawing.deliverer(services).deliver_due("test")
    assert services.store.transfers.view("failed")["state"] == "failed"

    assert _suspend(services, client)["parked"] == 1

    assert services.store.transfers.view("failed")["state"] == "awaiting_judgement"
    assert withdrawing.withdrawn(services, "failed")[0]["was"] == "failed"
    redeliver = client.post(
        "/api/v1/transfers/failed/redeliver", headers=bearer(services, "admin", ISLINGTON)
    )
    assert redeliver.status_code == 404, "to its recipient, a parked transfer is unknown"
    redeliver = client.post(
        "/api/v1/transfers/failed/redeliver", headers=bearer(services, "admin", HACKNEY)
    )
    assert redeliver.status_code == 409
    assert withdrawing.deliverer(services).deliver_due("test") == 0
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("held", ["claimed", "handed over by intake"])
def test_an_envelope_in_flight_at_the_suspension_is_delivered_as_decided(
    services, receiver, client, held
):
    if held == "claimed":
        withdrawing.send(services, "in-flight")
        in_flight = withdrawing.claim(services, timedelta(minutes=2))
    else:
        lease = Lease("test", services.clock() + timedelta(minutes=2))
        in_flight = [withdrawing.send(services, "in-flight", lease=lease).held]
    assert len(in_flight) == 1

    assert _suspend(services, client)["parked"] == 0
    assert withdrawing.deliverer(services).deliver_group(in_flight).results == ["delivered"]

    assert event_ids(receiver.requests) == ["in-flight"]
    view = services.store.transfers.view("in-flight")
    assert view["state"] == "delivered" and view["decision"]["isp"]["id"] == "pan-london-caf"
    assert withdrawing.withdrawn(services, "in-flight") == []


def test_an_envelope_in_flight_at_the_suspension_whose_holder_died_is_withdrawn_not_sent(
    services, receiver, client
):
    """Its holder never records an attempt. Claims while its lease runs find nothing to do;
    once it has run out, the next claim finds it under the suspended ISP and withdraws it
    rather than handing it out."""
    lease = Lease("died", services.clock() + timedelta(minutes=2))
    withdrawing.send(services, "orphaned", lease=lease)
    assert _suspend(services, client)["parked"] == 0
    assert withdrawing.deliverer(services).deliver_due("test") == 0

    after_the_lease = withdrawing.deliverer(services, lambda: lease.until + timedelta(seconds=1))
    assert after_the_lease.deliver_due("test") == 0

    assert receiver.requests == [], "nothing sent under the suspended ISP"
    assert services.store.transfers.view("orphaned")["state"] == "awaiting_judgement"
    (withdrawn,) = withdrawing.withdrawn(services, "orphaned")
    assert withdrawn["status"] == "suspended"
    assert withdrawn["reason"] == "ISP pan-london-caf v2, in force, is suspended."


def test_a_delivery_recorded_after_its_envelope_was_withdrawn_gives_the_transfer_its_basis_back(
    services, receiver, client
):
    """Its lease ran out before the suspension, yet its attempt (started within the lease) had
    delivered it: the store must not say it awaits a judgement."""
    withdrawing.send(services, "late")
    claimed = withdrawing.claim(services, timedelta(0))
    assert _suspend(services, client)["parked"] == 1

    assert withdrawing.deliverer(services).deliver_group(claimed).results == ["delivered"]

    view = services.store.transfers.view("late")
    assert view["state"] == "delivered" and view["decision"]["isp"]["id"] == "pan-london-caf"
    assert view["envelope"]["envelope_id"] == claimed[0].envelope.envelope_id
    actions = [a for _, a, _ in audit_actions(services.store, "late")]
    assert actions[-3:] == ["basis_withdrawn", "basis_reinstated", "delivered"]


def test_a_delivery_made_while_the_database_refused_changes_is_recorded_once_it_is_back(
    services, receiver, client, caplog
):
    """The envelope arrived, but the database refused its record, and its lease ran out
    meanwhile. Dropping the record would have the suspension after the outage park a transfer
    its recipient has (and a judgement not to share then say it was withheld): the record waits
    for the database instead."""
    refusing = refusing_changes(services)  # first: on SQLite the test stops here
    withdrawing.send(services, "through-an-outage")
    claimed = withdrawing.claim(services, timedelta(0))
    deliver = threading.Thread(target=withdrawing.deliverer(services).deliver_group, args=[claimed])
    with refusing:
        deliver.start()
        wait_until(lambda: "trying again" in caplog.text or not deliver.is_alive())
    deliver.join(15)
    assert event_ids(receiver.requests) == ["through-an-outage"]

    assert _suspend(services, client)["parked"] == 0, "its recipient has it"
    assert services.store.transfers.view("through-an-outage")["state"] == "delivered"
    assert withdrawing.deliverer(services).deliver_due("test") == 0
    assert len(receiver.requests) == 1, "not sent again"


def test_a_reinstated_transfers_subject_access_export_says_what_was_shared(
    services, receiver, client
):
    """Its basis back, the minimising before the withdrawal holds again: the family is told
    what went, not that nothing did."""
    body = examples.routine("late")
    withdrawing.send(services, "late")
    claimed = withdrawing.claim(services, timedelta(0))
    _suspend(services, client)
    assert withdrawing.deliverer(services).deliver_group(claimed).results == ["delivered"]

    nhs_number = body["data"]["case"]["child_identity"]["nhs_number"]
    (exported,) = services.subject_access.export({"nhs_number": nhs_number}, reader())["transfers"]
    assert exported["delivery"]["outcome"] != "awaiting_judgement"
    assert exported["basis"]["kind"] == "isp"
    assert exported["categories"]["shared"], exported["categories"]
    assert exported["categories"]["withheld"] == ["family_and_environment"]


def test_a_judgement_after_a_suspension_lists_as_withheld_what_the_isp_withheld_too(
    services, receiver, client
):
    """The stored event holds only what the ISP allowed, but the case had more: the new
    envelope, its audit and the family's export must still say that was withheld (rule 5)."""
    withdrawing.send(services, "retrying")
    receiver.respond_with(503)
    withdrawing.deliverer(services).deliver_due("test")
    _suspend(services, client)
    judged = client.post(
        "/api/v1/transfers/retrying/judgement",
        json=_share(),
        headers=bearer(services, "practitioner", HACKNEY),
    )
    assert judged.status_code == 200, judged.get_json()
    time.sleep(1.1)
    receiver.respond_with(200)
    assert withdrawing.deliverer(services).deliver_due("test") == 1

    sent = receiver.requests[-1].envelope
    assert "family_and_environment" in sent["data_categories"]["withheld"], sent["data_categories"]
    (minimised,) = [d for _, a, d in audit_actions(services.store, "retrying") if a == "minimised"][
        -1:
    ]
    assert "family_and_environment" in minimised["withheld"]


def test_after_a_suspension_a_judgement_sharing_only_what_the_isp_withheld_is_refused(
    services, receiver, client
):
    """The relay kept only what the ISP allowed; the family and environment section the ISP
    withheld is gone from it. A judgement sharing only that would send an empty case: it is
    refused, saying what the transfer still carries, and the transfer waits."""
    withdrawing.send(services, "withheld-before")
    _suspend(services, client)
    document = {**_share(), "data_categories": ["family_and_environment"]}

    judged = client.post(
        "/api/v1/transfers/withheld-before/judgement",
        json=document,
        headers=bearer(services, "practitioner", HACKNEY),
    )

    assert judged.status_code == 422, judged.get_json()
    assert (
        "none of which the transfer carries (it carries child_identity"
        in (judged.get_json()["detail"])
    )
    view = services.store.transfers.view("withheld-before")
    assert (view["state"], view["envelope"], view["outbox"]) == ("awaiting_judgement", None, None)


def test_retiring_the_isp_withdraws_what_is_still_to_be_sent_as_suspending_it_does(
    services, receiver, client
):
    withdrawing.send(services, "retiring")
    receiver.respond_with(503)
    assert withdrawing.deliverer(services).deliver_due("test") == 1
    retired = {**examples.pan_london_isp(), "version": 2, "status": "retired"}

    amended = client.post(
        f"{ISP}/versions", json=retired, headers=bearer(services, "admin", HACKNEY)
    )

    assert amended.status_code == 201, amended.get_json()
    (recorded,) = [d for _, a, d in audit_actions(services.store) if a == "isp_amended"]
    assert (recorded["status"], recorded["parked"]) == ("retired", 1)
    (withdrawn,) = withdrawing.withdrawn(services, "retiring")
    assert (withdrawn["ended_by_version"], withdrawn["status"]) == (2, "retired")
    view = services.store.transfers.view("retiring")
    assert view["state"] == "awaiting_judgement" and "was retired" in view["decision"]["reason"]
    receiver.respond_with(200)
    time.sleep(1.1)
    assert withdrawing.deliverer(services).deliver_due("test") == 0
    assert len(receiver.requests) == 1


def _claimed_then_suspended(services, client, event_id: str):
    """A transfer claimed for delivery, then its ISP suspended: it is in flight, not parked."""
    withdrawing.send(services, event_id)
    in_flight = withdrawing.claim(services, timedelta(minutes=2))
    assert _suspend(services, client)["parked"] == 0
    return in_flight


def test_an_attempt_in_flight_at_the_suspension_that_fails_is_not_retried_under_it(
    services, receiver, client
):
    in_flight = _claimed_then_suspended(services, client, "inflight-retry")
    receiver.respond_with(503)
    assert withdrawing.deliverer(services).deliver_group(in_flight).results == ["retry"]
    time.sleep(1.1)
    withdrawing.deliverer(services).deliver_due("test")
    # The retry must not go out under the suspended ISP.
    assert event_ids(receiver.requests) == ["inflight-retry"]
    assert services.store.transfers.view("inflight-retry")["state"] == "awaiting_judgement"


def test_an_attempt_in_flight_at_the_suspension_that_fails_for_good_is_not_redelivered(
    services, receiver, client
):
    in_flight = _claimed_then_suspended(services, client, "inflight-fail")
    receiver.respond_with(400)
    assert withdrawing.deliverer(services).deliver_group(in_flight).results == ["failed"]
    redeliver = client.post(
        "/api/v1/transfers/inflight-fail/redeliver", headers=bearer(services, "admin", HACKNEY)
    )
    assert redeliver.status_code == 409, "a failed transfer under a suspended ISP is parked"


def _send_child(services, event_id: str, n: int):
    body = examples.encode(transfer_of(examples.ROUTINE_WITH_ISP, event_id, child(n)))
    (outcome,) = services.relay.receive_many([(body, EMBEDDED)])
    assert outcome.state == "signed"


def test_audit_search_by_basis_follows_a_withdrawal(services, receiver, client):
    _send_child(services, "parked-again", 4)
    assert _suspend(services, client)["parked"] == 1
    found = client.get(
        "/api/v1/audit",
        query_string={"basis": "none"},
        headers=bearer(services, "auditor", HACKNEY),
    ).get_json()
    assert {r["event_id"] for r in found["records"]} >= {"parked-again"}
    found = client.get(
        "/api/v1/audit",
        query_string={"basis": "isp"},
        headers=bearer(services, "auditor", HACKNEY),
    ).get_json()
    assert "parked-again" not in {r["event_id"] for r in found["records"]}


def _suspend_while_paused(services, owner, name: str, first: Callable[[], object], when) -> dict:
    """Run ``first`` in a thread until it calls ``owner.name`` with arguments ``when`` accepts,
    and hold it there, inside its transaction, while a suspension starts in another thread;
    then let it go. What each returned: {"first": ..., "suspend": ...}."""
    original, entered, go = getattr(owner, name), threading.Event(), threading.Event()

    def paused(*args):
        original(*args)
        if when(*args):
            entered.set()
            assert go.wait(10)

    setattr(owner, name, paused)
    results = {}
    started = threading.Thread(target=lambda: results.setdefault("first", first()))
    started.start()
    try:
        assert entered.wait(10)
        client = create_app(services).test_client()
        suspend = threading.Thread(
            target=lambda: results.setdefault("suspend", _suspend(services, client))
        )
        suspend.start()
        time.sleep(0.5)
    finally:
        go.set()
        started.join(20)
        setattr(owner, name, original)
    suspend.join(20)
    return results


def test_a_redelivery_racing_the_suspension_is_not_sent_under_the_suspended_isp(
    services, receiver, client
):
    """The redelivery holds the failed transfer when the suspension looks for it: the
    suspension waits for it, then must find its envelope back in the outbox, and withdraw it."""
    withdrawing.send(services, "redelivered")
    receiver.respond_with(400)
    withdrawing.deliverer(services).deliver_due("test")
    assert services.store.transfers.view("redelivered")["state"] == "failed"

    redelivery = partial(
        client.post,
        "/api/v1/transfers/redelivered/redeliver",
        headers=bearer(services, "admin", HACKNEY),
    )
    results = _suspend_while_paused(
        services,
        services.store.outbox,
        "_append_audit",
        redelivery,
        when=lambda session, event_id, action, detail: action == "redelivery",
    )
    assert results["suspend"]["parked"] == 1
    assert results["first"].status_code == 202

    withdrawing.deliverer(services).deliver_due("test")
    assert len(receiver.requests) == 1, "nothing sent under the suspended ISP"
    assert services.store.transfers.view("redelivered")["state"] == "awaiting_judgement"


def test_a_batch_stored_as_the_suspension_is_recorded_is_not_sent_under_the_suspended_isp(
    services, receiver, client
):
    """The batch has checked the register, and is still storing, when the suspension starts:
    the suspension waits for it, then must find its envelope in the outbox, and withdraw it."""
    results = _suspend_while_paused(
        services,
        services.store.reference,
        "check",
        partial(withdrawing.send, services, "in-the-batch"),
        when=lambda session, reference: True,
    )
    assert results["suspend"]["parked"] == 1

    withdrawing.deliverer(services).deliver_due("test")
    assert receiver.requests == [], "nothing sent under the suspended ISP"
    assert services.store.transfers.view("in-the-batch")["state"] == "awaiting_judgement"


def _late_delivery_after_judging(services, client, event_id: str, document: dict):
    """An envelope claimed, its lease run out, withdrawn by a suspension, the transfer judged
    with ``document``; then the attempt, which had arrived before the suspension, is recorded."""
    withdrawing.send(services, event_id)
    claimed = withdrawing.claim(services, timedelta(0))
    assert _suspend(services, client)["parked"] == 1
    judged = client.post(
        f"/api/v1/transfers/{event_id}/judgement",
        json=document,
        headers=bearer(services, "practitioner", HACKNEY),
    )
    assert judged.status_code == 200, judged.get_json()
    assert withdrawing.deliverer(services).deliver_group(claimed).results == ["delivered"]


def test_a_late_delivery_overtakes_a_judgement_not_to_share_and_its_recipient_sees_it(
    services, receiver, client
):
    document = judgements.not_share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    document["practitioner"]["organisation"] = HACKNEY
    _late_delivery_after_judging(services, client, "late-withheld", document)
    assert event_ids(receiver.requests) == ["late-withheld"]

    sender = client.get(
        "/api/v1/transfers/late-withheld", headers=bearer(services, "practitioner", HACKNEY)
    ).get_json()
    assert sender["state"] == "delivered", "the store says what the recipient has"
    assert sender["decision"]["isp"]["id"] == "pan-london-caf"
    assert sender["decision"]["overtaken_judgement"]["decision"] == "not_share"
    reinstated = sender["timeline"][-2]
    assert reinstated["action"] == "basis_reinstated"
    assert (
        "judgement not to share, recorded since, came after it had arrived"
        in (reinstated["detail"]["reason"])
    )

    as_recipient = bearer(services, "auditor", ISLINGTON)
    listed = client.get("/api/v1/transfers", headers=as_recipient).get_json()["transfers"]
    assert [(t["event_id"], t["basis"]) for t in listed] == [("late-withheld", "isp")]
    seen = client.get("/api/v1/transfers/late-withheld", headers=as_recipient).get_json()
    assert "overtaken_judgement" not in seen["decision"], "its reasons are the sender's"
    assert seen["state"] == "delivered"
    nhs_number = examples.routine("late-withheld")["data"]["case"]["child_identity"]["nhs_number"]
    export = services.subject_access.export({"nhs_number": nhs_number}, reader(ISLINGTON))
    (exported,) = export["transfers"]
    assert (exported["basis"]["kind"], exported["delivery"]["outcome"]) == ("isp", "delivered")
    assert exported["categories"]["shared"], "what the envelope carried"

    report = services.audit.verify()
    assert report.intact, report.as_dict()
    assert report.as_dict()["judgements"] == {"checked": 1, "not_checked": 0, "errors": []}


def test_the_senders_export_holds_the_judgement_not_to_share_a_late_delivery_overtook(
    services, receiver, client
):
    """The relay keeps the practitioner's judgement, reasons and all, with the transfer: a
    subject access export for its sender (or the operator) must show it, its recipient's not."""
    document = judgements.not_share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    document["practitioner"]["organisation"] = HACKNEY
    _late_delivery_after_judging(services, client, "late-withheld", document)
    nhs_number = examples.routine("late-withheld")["data"]["case"]["child_identity"]["nhs_number"]

    def exported(authority: str | None) -> dict:
        export = services.subject_access.export({"nhs_number": nhs_number}, reader(authority))
        (transfer,) = export["transfers"]
        return transfer

    necessity = judgements.as_recorded(document)["reasons"]["necessity"]
    for sender in (None, HACKNEY):
        overtaken = exported(sender)["basis"]["overtaken_judgement"]
        assert overtaken["decision"] == "not_share"
        assert overtaken["reasons"]["necessity"] == necessity
    assert "overtaken_judgement" not in exported(ISLINGTON)["basis"]
    assert necessity not in json.dumps(exported(ISLINGTON))

    page = render_html(services.subject_access.export({"nhs_number": nhs_number}, reader(HACKNEY)))
    assert "not share" in page and escape(necessity) in page
    page = render_html(
        services.subject_access.export({"nhs_number": nhs_number}, reader(ISLINGTON))
    )
    assert escape(necessity) not in page


def test_the_export_lists_what_a_late_delivery_shared_besides_the_judgements_envelope(
    services, receiver, client
):
    """The envelope signed under the ISP arrived before the suspension, the judgement's after
    it: the recipient holds both, so the child's export lists what either shared."""
    _late_delivery_after_judging(services, client, "late-shared", _share())
    withdrawing.deliverer(services).deliver_due("test")
    nhs_number = examples.routine("late-shared")["data"]["case"]["child_identity"]["nhs_number"]

    for authority in (None, ISLINGTON):
        export = services.subject_access.export({"nhs_number": nhs_number}, reader(authority))
        (transfer,) = export["transfers"]
        shared, withheld = transfer["categories"]["shared"], transfer["categories"]["withheld"]
        assert {"child_identity", "lead_professional", "child_contact", "plan"} <= set(shared)
        assert "family_and_environment" in withheld
        assert not set(shared) & set(withheld)


def _overtaken_rewritten(row) -> dict:
    decision = row.decision
    decision["overtaken_judgement"]["reasons"]["necessity"] = "Rewritten afterwards."
    return {"decision": decision}


def test_the_overtaken_judgement_is_still_vouched_for_by_the_audit_chain(
    services, receiver, client
):
    document = judgements.not_share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    document["practitioner"]["organisation"] = HACKNEY
    _late_delivery_after_judging(services, client, "late-withheld", document)
    rewrite_transfer(services.store.url, "late-withheld", _overtaken_rewritten)
    report = services.audit.verify()
    assert not report.intact
    (problem,) = report.as_dict()["judgements"]["errors"]
    assert "has changed since it was recorded" in problem


def test_a_late_delivery_after_a_judgement_to_share_leaves_the_judgements_envelope_to_go(
    services, receiver, client
):
    _late_delivery_after_judging(services, client, "late-shared", _share())
    view = services.store.transfers.view("late-shared")
    assert view["state"] == "signed" and "judgement" in view["decision"]
    assert "overtaken_judgement" not in view["decision"]
    withdrawing.deliverer(services).deliver_due("test")
    assert event_ids(receiver.requests) == ["late-shared", "late-shared"]
    assert services.store.transfers.view("late-shared")["state"] == "delivered"


def test_a_batch_decided_again_as_the_register_changes_is_not_sent_under_an_isp_suspended_meanwhile(
    services, receiver, client, monkeypatch
):
    """Admins are busy: the register changes while a worker's batch is decided, again and
    again, until the batch is stored on its last try without checking the register; the ISP is
    suspended between that decision and the storing. The worker's delivery process must not
    send the envelope under the suspended ISP."""
    read = services.store.intake_reference
    tries = []

    def read_as_admins_change_the_register():
        reference = read()
        tries.append(reference.version)
        if len(tries) < REFERENCE_TRIES:
            services.store.access.set_broker_publisher(
                f"camden-cms-{len(tries)}", "E09000007", by=OPERATOR
            )
        else:
            _suspend(services, client)
        return reference

    monkeypatch.setattr(services.store, "intake_reference", read_as_admins_change_the_register)
    lease = Lease("worker", services.clock() + timedelta(minutes=2))
    outcome = withdrawing.send(services, "decided-thrice", lease=lease)
    assert len(tries) == REFERENCE_TRIES

    if outcome.held is not None:  # as the worker's delivery process would deliver it
        withdrawing.deliverer(services).deliver_group([outcome.held])
    withdrawing.deliverer(services).deliver_due("test")

    assert receiver.requests == [], "nothing sent under the suspended ISP"
    assert services.store.transfers.view("decided-thrice")["state"] == "awaiting_judgement"
    (withdrawn,) = withdrawing.withdrawn(services, "decided-thrice")
    assert withdrawn["status"] == "suspended"
