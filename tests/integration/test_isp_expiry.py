"""An ISP whose version in force has expired withdraws what is still to be sent under it, as a
suspension does, though no one records it: from the day after its ``expires_on`` nothing signed
under it is delivered or redelivered, and its transfers wait for a practitioner's judgement
(DESIGN rule 2: an expired agreement does not apply)."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from service.access import OPERATOR
from service.domain.basis import decision_day
from service.judgements import Judgements
from service.relay import Relay
from service.sealing import Sealer
from service.senders import EMBEDDED
from service.store.isps import IspChange
from service.store.outbox import IN_FLIGHT_THEN_FAILED, Lease
from service.web import create_app
from tests.support import examples, judgements, withdrawing
from tests.support.https_receiver import event_ids, https_recipients
from tests.support.tokens import bearer

HACKNEY, ISLINGTON = "E09000012", "E09000019"


@pytest.fixture
def receiver(services, tmp_path):
    with https_recipients(services, tmp_path, ISLINGTON) as running:
        yield running


def _today(services) -> date:
    return decision_day(services.clock())


def _amend(services, version: int, **changes) -> None:
    """Record a version of the pan-London ISP as the operator, every signature confirmed."""
    document = {**examples.pan_london_isp(), "version": version, **changes}
    services.store.isps.record(
        [IspChange(document, "isp_amended")], now=services.clock(), by=OPERATOR
    )


def _expiring_today(services) -> None:
    """Version 2 of the pan-London ISP, in force, expires at the end of the services' day."""
    _amend(services, 2, expires_on=_today(services).isoformat())


def _days_later(services, days: int, seconds: int = 0):
    """The services' clock, ``days`` (and ``seconds``) on: a retry a second away is then due."""
    return lambda: services.clock() + timedelta(days=days, seconds=seconds)


def _retrying(services, receiver, event_id: str) -> str:
    """A transfer signed under version 2, its first attempt failed and a retry due a second
    later; its envelope id."""
    _expiring_today(services)
    withdrawing.send(services, event_id)
    receiver.respond_with(503)
    assert withdrawing.deliverer(services).deliver_due("test") == 1
    return services.store.transfers.view(event_id)["envelope"]["envelope_id"]


def _failed_under_an_isp_expiring_today(services, receiver) -> None:
    """Transfer ``failed``, its delivery refused for good, under an ISP that expires today."""
    _expiring_today(services)
    withdrawing.send(services, "failed")
    receiver.respond_with(400)
    withdrawing.deliverer(services).deliver_due("test")
    assert services.store.transfers.view("failed")["state"] == "failed"


def test_the_day_after_its_isp_expired_a_failed_transfer_takes_a_judgement_first_thing(
    services, receiver
):
    """No delivery worker has claimed yet today (none is running: the web app runs no delivery
    loop). The transfer's ISP has expired, so it needs a judgement: the practitioner is not
    told its basis is already decided, and the judgement sends it on."""
    _failed_under_an_isp_expiring_today(services, receiver)
    next_day = _days_later(services, 1)
    judging = Judgements(services.store, Sealer(services.keyring), next_day)
    client = create_app(replace(services, clock=next_day, judgements=judging)).test_client()
    share = judgements.share(recipients=[ISLINGTON], purpose="continuity_of_early_help")
    share["practitioner"]["organisation"] = HACKNEY

    response = client.post(
        "/api/v1/transfers/failed/judgement",
        json=share,
        headers=bearer(services, "practitioner", HACKNEY),
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "signed"
    (withdrawn,) = withdrawing.withdrawn(services, "failed")
    assert (withdrawn["status"], withdrawn["was"]) == ("expired", "failed")
    receiver.respond_with(200)
    assert withdrawing.deliverer(services, next_day).deliver_due("test") == 1
    assert receiver.requests[-1].envelope["basis"]["kind"] == "judgement"


def test_on_its_expiry_day_a_retry_is_still_delivered_under_the_isp(services, receiver):
    _retrying(services, receiver, "expiry-day")

    assert withdrawing.deliverer(services, _days_later(services, 0, 2)).deliver_due("test") == 1

    assert event_ids(receiver.requests) == ["expiry-day", "expiry-day"]
    assert services.store.transfers.view("expiry-day")["state"] == "delivered"


def test_the_day_after_it_expired_a_retry_is_not_sent_and_the_transfer_awaits_a_judgement(
    services, receiver
):
    signed_under_isp = _retrying(services, receiver, "retrying")

    assert withdrawing.deliverer(services, _days_later(services, 1)).deliver_due("test") == 0

    assert len(receiver.requests) == 1, "nothing sent under the expired ISP"
    view = services.store.transfers.view("retrying")
    assert (view["state"], view["envelope"], view["outbox"]) == ("awaiting_judgement", None, None)
    assert (
        "v2, which it was signed under, expired before it was delivered"
        in (view["decision"]["reason"])
    )
    assert view["decision"]["considered"] == [
        {"isp_id": "pan-london-caf", "version": 2, "finding": "expired"}
    ]
    (withdrawn,) = withdrawing.withdrawn(services, "retrying")
    assert withdrawn == {
        "isp_id": "pan-london-caf",
        "version": 2,
        "ended_by_version": 2,
        "status": "expired",
        "envelope_id": signed_under_isp,
        "was": "signed",
        "reason": f"ISP pan-london-caf v2, in force, expired on {_today(services)}.",
    }
    assert view["timeline"][-1]["action"] == "basis_withdrawn"


@pytest.mark.parametrize("first", ["the redelivery", "the delivery worker"])
def test_a_failed_transfer_is_parked_once_its_isp_has_expired_and_cannot_be_redelivered(
    services, receiver, first
):
    """Whichever comes first after midnight parks it: the web app, which redelivers, runs no
    delivery loop."""
    _failed_under_an_isp_expiring_today(services, receiver)
    next_day = _days_later(services, 1)
    if first == "the delivery worker":
        assert withdrawing.deliverer(services, next_day).deliver_due("test") == 0
        assert services.store.transfers.view("failed")["state"] == "awaiting_judgement"

    client = create_app(replace(services, clock=next_day)).test_client()
    response = client.post(
        "/api/v1/transfers/failed/redeliver", headers=bearer(services, "admin", HACKNEY)
    )

    assert response.status_code == 409
    assert response.get_json()["detail"] == (
        "It is awaiting_judgement; only a failed transfer can be redelivered."
    )
    assert withdrawing.deliverer(services, next_day).deliver_due("test") == 0
    assert len(receiver.requests) == 1
    (withdrawn,) = withdrawing.withdrawn(services, "failed")
    assert (withdrawn["status"], withdrawn["was"]) == ("expired", "failed")


def test_the_recipient_redelivering_it_as_the_expiry_parks_it_is_told_of_no_such_transfer(
    services, receiver
):
    """The recipient's admin may redeliver what failed on its way to it, but a transfer parked
    again is its sender's alone: the redelivery that parks it must not tell the recipient so."""
    _expiring_today(services)
    withdrawing.send(services, "failed")
    receiver.respond_with(400)
    withdrawing.deliverer(services).deliver_due("test")
    client = create_app(replace(services, clock=_days_later(services, 1))).test_client()

    response = client.post(
        "/api/v1/transfers/failed/redeliver", headers=bearer(services, "admin", ISLINGTON)
    )

    assert response.status_code == 404
    assert response.get_json()["detail"] == "No transfer with event id 'failed'."
    assert services.store.transfers.view("failed")["state"] == "awaiting_judgement"


def test_an_attempt_in_flight_at_expiry_is_delivered_as_decided(services, receiver):
    _expiring_today(services)
    withdrawing.send(services, "in-flight")
    in_flight = withdrawing.claim(services, timedelta(minutes=2))
    next_day = _days_later(services, 1)

    assert withdrawing.deliverer(services, next_day).deliver_group(in_flight).results == [
        "delivered"
    ]

    view = services.store.transfers.view("in-flight")
    assert view["state"] == "delivered" and view["decision"]["isp"]["version"] == 2
    assert withdrawing.withdrawn(services, "in-flight") == []


def test_an_attempt_in_flight_at_expiry_that_then_fails_is_not_retried(services, receiver):
    """The delivery worker has already swept the new day when the attempt's failure is
    recorded: the failure itself must withdraw it."""
    _expiring_today(services)
    withdrawing.send(services, "in-flight")
    # Held past the next day's claim, whose clock is a day on.
    in_flight = withdrawing.claim(services, timedelta(days=2))
    next_day = _days_later(services, 1)
    assert withdrawing.deliverer(services, next_day).deliver_due("test") == 0  # it is held
    receiver.respond_with(503)

    assert withdrawing.deliverer(services, next_day).deliver_group(in_flight).results == ["retry"]

    later = _days_later(services, 1, 2)
    assert withdrawing.deliverer(services, later).deliver_due("test") == 0
    assert event_ids(receiver.requests) == ["in-flight"]
    assert services.store.transfers.view("in-flight")["state"] == "awaiting_judgement"
    (withdrawn,) = withdrawing.withdrawn(services, "in-flight")
    assert (withdrawn["status"], withdrawn["reason"]) == ("expired", IN_FLIGHT_THEN_FAILED)


@pytest.mark.parametrize(
    ("in_force_from", "delivered"), [("today", True), ("the day after next", False)]
)
def test_an_amendment_that_extends_the_date_keeps_what_was_signed_before_it_going_once_in_force(
    services, receiver, in_force_from, delivered
):
    """An envelope counts by its ISP's version in force, as an amendment leaves what was
    signed before it to be delivered as decided; one that starts later leaves a gap."""
    _retrying(services, receiver, "extended")
    starts = _today(services) + timedelta(days=0 if in_force_from == "today" else 2)
    _amend(services, 3, effective_from=starts.isoformat(), expires_on="2030-03-31")

    sent = withdrawing.deliverer(services, _days_later(services, 1)).deliver_due("test")

    view = services.store.transfers.view("extended")
    if delivered:
        assert sent == 1 and view["state"] == "delivered"
        assert receiver.requests[-1].envelope["basis"]["isp"]["version"] == 2
    else:
        assert sent == 0 and view["state"] == "awaiting_judgement"
        (withdrawn,) = withdrawing.withdrawn(services, "extended")
        assert (withdrawn["ended_by_version"], withdrawn["status"]) == (2, "expired")


def test_a_transfer_decided_on_the_last_day_and_stored_after_the_new_days_sweep_is_not_sent(
    services, receiver
):
    """The next day's first claim has swept already when a batch decided just before midnight
    is stored; the claim after it must still not hand its envelope out."""
    _expiring_today(services)
    next_day = _days_later(services, 1)
    assert withdrawing.deliverer(services, next_day).deliver_due("test") == 0
    withdrawing.send(services, "just-before-midnight")

    assert withdrawing.deliverer(services, next_day).deliver_due("test") == 0

    assert receiver.requests == [], "nothing sent under the expired ISP"
    view = services.store.transfers.view("just-before-midnight")
    assert view["state"] == "awaiting_judgement"
    (withdrawn,) = withdrawing.withdrawn(services, "just-before-midnight")
    assert (withdrawn["status"], withdrawn["ended_by_version"]) == ("expired", 2)


def test_a_batch_a_worker_decided_on_the_last_day_and_stored_after_midnight_is_not_sent(
    services, receiver
):
    """As above, but stored by a worker, which holds what a claim could take at once for its
    own delivery process to send without a claim: decided just before midnight, the batch is
    stored after it, and what it holds must not go out under the expired ISP either."""
    _expiring_today(services)
    next_day = _days_later(services, 1)
    assert withdrawing.deliverer(services, next_day).deliver_due("test") == 0
    decided_at = iter([services.clock()])  # then it is the next day
    relay = Relay(
        services.store,
        Sealer(services.keyring),
        child_keys=services.child_keys,
        max_event_bytes=services.settings.max_event_bytes,
        clock=lambda: next(decided_at, None) or next_day(),
    )
    body = examples.encode(examples.routine("just-before-midnight", case="just-before-midnight"))
    lease = Lease("worker", next_day() + timedelta(minutes=2))

    (outcome,) = relay.receive_many([(body, EMBEDDED)], lease=lease)
    assert outcome.state == "signed"
    if outcome.held is not None:  # as the worker's delivery process would deliver it
        withdrawing.deliverer(services, next_day).deliver_group([outcome.held])
    withdrawing.deliverer(services, next_day).deliver_due("test")

    assert receiver.requests == [], "nothing sent under the expired ISP"
    view = services.store.transfers.view("just-before-midnight")
    assert view["state"] == "awaiting_judgement"
    (withdrawn,) = withdrawing.withdrawn(services, "just-before-midnight")
    assert (withdrawn["status"], withdrawn["ended_by_version"]) == ("expired", 2)
