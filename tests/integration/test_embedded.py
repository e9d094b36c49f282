"""The embedded queue: bad input and messages that crash processing are kept, never dropped, and
once kept block nothing."""

import logging
import threading

import sqlalchemy as sa

from service.embedded import EMBEDDED_PROCESSING_FAILED, InProcessQueue
from service.store.engine import StoreUnavailable
from tests.support import dead_letters, examples
from tests.support.amqp import wait_until
from tests.support.cli import runner
from tests.support.crashing import CrashesOn
from tests.support.store_reads import audit_actions


def _crashing_on_poison(services, tmp_path) -> InProcessQueue:
    """The embedded queue, delivering to Islington under the ISP, whose processing of any
    message holding ``embedded-poison`` fails."""
    services.store.add_isp(examples.pan_london_isp())
    services.store.organisations.set_adapter(
        "E09000019", "directory", {"path": str(tmp_path / "islington")}, {}
    )
    return InProcessQueue(
        CrashesOn(services.relay, b"embedded-poison"), services.deliverer, services.store
    )


def test_bad_and_crashing_messages_are_kept_as_dead_letters_and_the_next_is_delivered(
    services, tmp_path
):
    poison = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="embedded-poison"))
    valid = examples.event(examples.ROUTINE_WITH_ISP, id="embedded-valid")
    queue = _crashing_on_poison(services, tmp_path)
    for body in (b"this is not json", poison, examples.encode(valid)):
        queue.publish(body)
    queue.drain()

    engine = sa.create_engine(services.settings.database_url)
    with engine.connect() as conn:
        dead = conn.execute(sa.text("SELECT body, reason FROM dead_letters ORDER BY id")).all()
    engine.dispose()
    assert [body for body, _ in dead] == [b"this is not json", poison]
    assert dead[0].reason.startswith("Not JSON") and dead[1].reason == EMBEDDED_PROCESSING_FAILED
    rejected = [d for _, a, d in audit_actions(services.store) if a == "rejected"]
    assert [d["rejection"] for d in rejected] == ["not_json", "processing_failed"]
    assert services.store.transfers.view(valid["id"])["state"] == "delivered"
    assert len(list((tmp_path / "islington").glob("*.json"))) == 1


def test_a_crashing_message_whose_id_cannot_be_stored_is_kept_and_holds_up_nothing(
    services, tmp_path
):
    """The id read from it, with a NUL, was its dead letter's event id: PostgreSQL refused the
    letter on every try, and the queue held the message, and every one behind it, for good."""
    poison = examples.event(examples.ROUTINE_WITH_ISP, id="embedded-poison\u0000")
    valid = examples.event(examples.ROUTINE_WITH_ISP, id="embedded-valid")
    queue = _crashing_on_poison(services, tmp_path)
    for event in (poison, valid):
        queue.publish(examples.encode(event))
    draining = threading.Thread(target=queue.drain, daemon=True)
    draining.start()
    draining.join(15)

    assert not draining.is_alive(), "the queue is held up"
    assert services.store.transfers.view(valid["id"])["state"] == "delivered"
    ((event_id, _, detail),) = [r for r in audit_actions(services.store) if r[1] == "rejected"]
    assert (event_id, detail["rejection"]) == (None, "processing_failed")
    listed = runner(services)("dead-letter", "list").output
    assert listed.splitlines()[0].endswith(f"  -  {EMBEDDED_PROCESSING_FAILED}")


class _UnavailableOnce:
    """The real relay, but the store is unavailable at the first call, as in a brief outage."""

    def __init__(self, relay) -> None:
        self._relay, self.calls = relay, 0

    def receive(self, body, *, sender):
        self.calls += 1
        if self.calls == 1:
            raise StoreUnavailable("The database is unavailable: locked")
        return self._relay.receive(body, sender=sender)


def test_a_message_met_by_a_store_outage_waits_it_out_and_is_delivered(services, tmp_path):
    services.store.add_isp(examples.pan_london_isp())
    services.store.organisations.set_adapter(
        "E09000019", "directory", {"path": str(tmp_path / "islington")}, {}
    )
    relay = _UnavailableOnce(services.relay)
    queue = InProcessQueue(relay, services.deliverer, services.store)
    event = examples.event(examples.ROUTINE_WITH_ISP, id="after-an-outage")
    queue.publish(examples.encode(event))
    queue.drain()

    assert relay.calls == 2
    assert services.store.transfers.view(event["id"])["state"] == "delivered"
    assert [a for _, a, _ in audit_actions(services.store) if a == "rejected"] == []


def test_a_message_whose_dead_letter_the_store_refuses_is_held_until_it_is_kept(services, caplog):
    poison = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="refused-poison"))
    queue = InProcessQueue(
        CrashesOn(services.relay, b"refused-poison"), services.deliverer, services.store
    )
    with caplog.at_level(logging.ERROR, logger="service.embedded"):
        with dead_letters.refused(services.store):
            queue.publish(b"this is not json")
            wait_until(lambda: caplog.records)  # its dead letter refused once at least
            queue.publish(poison)
        queue.drain()

    assert [body for _, body in dead_letters.kept(services.store)] == [b"this is not json", poison]
    rejected = [d for _, a, d in audit_actions(services.store) if a == "rejected"]
    assert [d["rejection"] for d in rejected] == ["not_json", "processing_failed"]
