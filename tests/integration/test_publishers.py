"""A case system publishing over AMQP may send only for the authority its broker account has."""

import json

import pytest

from service.access import OPERATOR
from service.senders import BrokerSenders
from service.worker import DEAD_QUEUE, REASON_HEADER, REJECTION_HEADER
from tests.support import examples
from tests.support.amqp import publish, reset_topology, running_worker, take, wait_until
from tests.support.store_reads import audit_actions

pytestmark = pytest.mark.broker

HACKNEY, ISLINGTON, NEWHAM = "E09000012", "E09000019", "E09000025"


@pytest.fixture
def strict_worker(services, broker_url, tmp_path):
    """A worker that trusts no account to send for every authority; guest is Hackney's."""
    reset_topology(broker_url)
    services.store.add_isp(examples.pan_london_isp())
    services.store.organisations.set_adapter(
        ISLINGTON, "directory", {"path": str(tmp_path / ISLINGTON)}, {}
    )
    services.store.access.set_broker_publisher("guest", HACKNEY, by=OPERATOR)
    senders = BrokerSenders(trusted_users=())
    with running_worker(broker_url, services, senders=senders):
        yield tmp_path / ISLINGTON


def _dead_by_id(broker_url, count):
    return {
        json.loads(body)["id"]: properties.headers
        for properties, body in take(broker_url, DEAD_QUEUE, count)
    }


def test_events_from_the_accounts_own_authority_arrive_and_others_are_dead_lettered(
    services, broker_url, strict_worker
):
    own = examples.event(examples.ROUTINE_WITH_ISP, id="from-hackney")
    forged = examples.event(examples.ROUTINE_WITHOUT_BASIS, id="claims-havering")
    publish(broker_url, examples.encode(forged), examples.encode(own))

    wait_until(lambda: list(strict_worker.glob("*.json")))
    dead = _dead_by_id(broker_url, 1)
    assert dead["claims-havering"][REJECTION_HEADER] == "forged_sender"
    assert "'guest' may not send for E09000025" in dead["claims-havering"][REASON_HEADER]
    # The file is written before the outcome is recorded.
    wait_until(
        lambda: services.store.transfers.view("from-hackney")["state"] == "delivered", timeout=60
    )
    assert services.store.transfers.view("claims-havering") is None
    [(_, _, refusal)] = [
        a for a in audit_actions(services.store, "claims-havering") if a[1] == "rejected"
    ]
    assert refusal["rejection"] == "forged_sender"
    assert refusal["sent_by"] == {"via": "amqp", "broker_user": "guest"}


def test_a_message_that_does_not_say_who_sent_it_is_dead_lettered(
    services, broker_url, strict_worker
):
    event = examples.event(examples.ROUTINE_WITH_ISP, id="anonymous")
    publish(broker_url, examples.encode(event), with_user_id=False)

    dead = _dead_by_id(broker_url, 1)
    assert dead["anonymous"][REJECTION_HEADER] == "forged_sender"
    assert "no user_id" in dead["anonymous"][REASON_HEADER]
    assert services.store.transfers.view("anonymous") is None
    [(_, _, refusal)] = audit_actions(services.store, "anonymous")
    assert refusal["sent_by"] == {"via": "amqp", "broker_user": None}


def test_an_unregistered_account_may_send_for_no_authority(services, broker_url, strict_worker):
    services.store.access.remove_broker_publisher("guest", HACKNEY, by=OPERATOR)
    event = examples.event(examples.ROUTINE_WITH_ISP, id="unregistered")
    publish(broker_url, examples.encode(event))

    dead = _dead_by_id(broker_url, 1)
    assert "(it sends for no authority)" in dead["unregistered"][REASON_HEADER]


def _sent_by(services, event_id):
    """Who the transfer's arrival record, and its timeline as the API shows it, say sent it."""
    [received] = [d for _, a, d in audit_actions(services.store, event_id) if a == "received"]
    timeline = services.store.transfers.view(event_id)["timeline"]
    [arrival] = [entry["detail"] for entry in timeline if entry["action"] == "received"]
    assert arrival["sent_by"] == received["sent_by"]
    return received["sent_by"]


def test_the_audit_names_the_broker_account_that_sent_an_accepted_event(
    services, broker_url, strict_worker
):
    publish(broker_url, examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="by-guest")))

    wait_until(lambda: services.store.transfers.view("by-guest") is not None)
    assert _sent_by(services, "by-guest") == {"via": "amqp", "broker_user": "guest"}


def test_the_audit_says_an_account_was_trusted_to_send_for_any_authority(services, broker_url):
    reset_topology(broker_url)
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS, id="by-the-hub")
    with running_worker(broker_url, services, senders=BrokerSenders(trusted_users=("guest",))):
        publish(broker_url, examples.encode(event))
        wait_until(lambda: services.store.transfers.view("by-the-hub") is not None)
    assert _sent_by(services, "by-the-hub") == {
        "via": "amqp",
        "broker_user": "guest",
        "trusted": True,
    }
