"""The worker on the real RabbitMQ: bad input is dead-lettered with a reason and blocks nothing."""

import itertools
import json
import logging
import socket
import string
import threading
import time
from urllib.parse import urlsplit

import pika.exceptions
import pytest

from service import worker as worker_module
from service.domain import retry
from service.logs import configure_logging
from service.worker import (
    DEAD_QUEUE,
    EVENT_ID_HEADER,
    EVENTS_EXCHANGE,
    EXCHANGE_HEADER,
    REASON_HEADER,
    TRANSFERS_QUEUE,
    Worker,
)
from tests.conftest import BROKER_HOST
from tests.support import examples
from tests.support.amqp import (
    Raw,
    broker_channel,
    broker_user,
    delete_queue,
    publish,
    queue_policy,
    reset_topology,
    running_worker,
    sending_raw_headers,
    take,
    wait_until,
)
from tests.support.crashing import CrashesOn
from tests.support.https_receiver import HttpsReceiver
from tests.support.read_only import refusing_changes
from tests.support.store_reads import audit_actions, has_transfer
from tests.support.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.broker


@pytest.fixture
def inbox(services, broker_url, tmp_path):
    """Every London authority receives into a folder of its own under tmp_path."""
    reset_topology(broker_url)
    services.store.add_isp(examples.pan_london_isp())
    for code in services.store.authorities():
        services.store.organisations.set_adapter(
            code, "directory", {"path": str(tmp_path / code)}, {}
        )
    return tmp_path


def _delivered(inbox, authority):
    return sorted((inbox / authority).glob("*.json")) if (inbox / authority).exists() else []


def test_bad_input_of_each_kind_is_dead_lettered_and_the_next_event_still_arrives(
    services, broker_url, inbox
):
    unknown_field = examples.event(examples.ROUTINE_WITH_ISP, id="bad-unknown-field", colour="red")
    unknown_authority = examples.event(examples.ROUTINE_WITH_ISP, id="bad-authority")
    unknown_authority["data"]["to_authority"] = "E09000099"
    bad = {
        b"this is not json": "not_json",
        examples.encode(unknown_field): "contract_violation",
        examples.encode(unknown_authority): "unknown_authority",
        b'{"padding": "' + b"x" * 300_000 + b'"}': "oversized",
        b'{"id": ' + b"1" * 5000 + b"}": "not_json",  # a number longer than Python converts
    }
    valid = examples.event(examples.ROUTINE_WITH_ISP, id="valid-after-bad-input")

    with running_worker(broker_url, services):
        publish(broker_url, *bad, examples.encode(valid))
        delivered = wait_until(lambda: _delivered(inbox, "E09000019"))
        dead = take(broker_url, DEAD_QUEUE, len(bad))

    assert len(delivered) == 1
    assert json.loads(delivered[0].read_text())["payload"]
    assert services.store.transfers.view(valid["id"])["state"] == "delivered"
    by_body = {body: properties.headers for properties, body in dead}
    assert set(by_body) == set(bad)
    for body, rejection in bad.items():
        assert by_body[body]["x-caf-rejection"] == rejection
        assert by_body[body][REASON_HEADER]
    assert "colour" in by_body[examples.encode(unknown_field)][REASON_HEADER]
    assert "E09000099" in by_body[examples.encode(unknown_authority)][REASON_HEADER]
    rejected = [d["rejection"] for _, a, d in audit_actions(services.store) if a == "rejected"]
    assert sorted(rejected) == sorted(bad.values())


def test_a_dead_letter_names_the_event_id_its_refusal_is_audited_under(services, broker_url, inbox):
    """An operator holding a `rejected` audit record could find its letter in caf.dead only by
    reason and time, and one holding a letter could not search the audit for it."""
    refused = examples.event(examples.ROUTINE_WITH_ISP, id="refused-on-amqp", colour="red")
    unread = b'{"id": "not-read", "data": '
    with running_worker(broker_url, services):
        publish(broker_url, examples.encode(refused), unread)
        dead = take(broker_url, DEAD_QUEUE, 2)

    by_body = {body: properties.headers for properties, body in dead}
    letter = by_body[examples.encode(refused)]
    assert letter[EVENT_ID_HEADER] == "refused-on-amqp"
    ((_, action, detail),) = audit_actions(services.store, "refused-on-amqp")
    assert (action, detail["reason"]) == ("rejected", letter[REASON_HEADER])
    assert EVENT_ID_HEADER not in by_body[unread]  # not JSON: its refusal names no event id


# What a case system may set on a message besides its body, as the dead letter should carry it:
# an operator sending a fixed letter again needs the encoding, the correlation id its publisher
# matches replies by, and the rest, as they were sent.
SENT_AS = {
    "content_type": "application/cloudevents+json",
    "content_encoding": "identity",
    "priority": 3,
    "correlation_id": "hackney-request-81",
    "reply_to": "hackney.replies",
    "message_id": "hackney-message-81",
    "timestamp": 1_772_000_000,
    "type": "caf.case-transfer",
    "app_id": "hackney-mosaic",
    "cluster_id": "london",
}


def test_a_dead_letter_carries_the_original_as_sent(services, broker_url, inbox):
    """The letter kept only the content type and message id: the encoding, the correlation
    id, who sent it and the rest were lost to an operator sending it again."""
    with running_worker(broker_url, services):
        publish(broker_url, b"{not json", headers={"trace": "t-81"}, expiration="600000", **SENT_AS)
        ((properties, body),) = take(broker_url, DEAD_QUEUE, 1)

    assert body == b"{not json"
    assert {name: getattr(properties, name) for name in SENT_AS} == SENT_AS
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    # Neither carried as itself: the broker lets a connection send only its own login as
    # user_id, and caf.dead would drop the letter when the expiration ran out.
    assert (properties.user_id, properties.expiration) == (None, None)
    assert properties.headers["x-caf-user-id"] == broker_user(broker_url)
    assert properties.headers["x-caf-expiration"] == "600000"
    assert properties.headers["trace"] == "t-81"
    assert properties.headers["x-caf-rejection"] == "not_json"


def test_no_caf_header_a_publisher_wrote_passes_as_the_relays_on_its_dead_letter(
    services, broker_url, inbox
):
    """A publisher's own x-caf-event-id, on a letter whose id could not be read, sent an
    operator to another event's refusal; its x-caf-headers-left-out said headers were lost
    that were not."""
    forged = {
        EVENT_ID_HEADER: "another-boroughs-event",
        "x-caf-headers-left-out": 7,
        "x-caf-user-id": "croydon-case-system",
        "X-Caf-Reason": "Accepted by caf-relay.",
        "x-caf-exchange": "caf.dead",
        "trace": "t-82",
    }
    with running_worker(broker_url, services):
        publish(broker_url, b"{not json", headers=forged)
        ((properties, _),) = take(broker_url, DEAD_QUEUE, 1)

    headers = properties.headers
    headers.pop("x-delivery-count", None)  # the broker's, on the message as it was taken
    assert headers == {
        "trace": "t-82",
        "x-caf-user-id": broker_user(broker_url),
        "x-caf-rejection": "not_json",
        REASON_HEADER: headers[REASON_HEADER],
        EXCHANGE_HEADER: EVENTS_EXCHANGE,
        "x-caf-headers-left-out": 5,
    }
    assert headers[REASON_HEADER].startswith("Not JSON")


def test_a_dead_letter_names_the_exchange_its_original_was_published_to(
    services, broker_url, inbox
):
    """A letter kept only the routing key: one sent straight to caf.transfers through the
    default exchange has the queue's name for it, which routes nothing sent again to
    caf.events, and the operator could not tell."""
    with running_worker(broker_url, services):
        publish(broker_url, b"{via caf.events")
        with broker_channel(broker_url) as channel:
            channel.confirm_delivery()
            channel.basic_publish("", TRANSFERS_QUEUE, b"{straight to the queue", mandatory=True)
        dead = take(broker_url, DEAD_QUEUE, 2)

    by_body = {body: properties.headers for properties, body in dead}
    assert by_body[b"{via caf.events"][EXCHANGE_HEADER] == EVENTS_EXCHANGE
    assert by_body[b"{straight to the queue"][EXCHANGE_HEADER] == ""


def test_the_same_event_published_twice_is_delivered_once(services, broker_url, inbox):
    event = examples.event(examples.ROUTINE_WITH_ISP, id="published-twice")
    with running_worker(broker_url, services):
        publish(broker_url, examples.encode(event), examples.encode(event))
        wait_until(
            lambda: "duplicate" in [a for _, a, _ in audit_actions(services.store, event["id"])],
            timeout=60,
        )
        # Stay until the first has arrived, so that a second delivery would be seen too.
        wait_until(
            lambda: (
                services.store.transfers.view(event["id"])["state"] == "delivered"
                and _delivered(inbox, "E09000019")
            ),
            timeout=60,
        )
    assert len(_delivered(inbox, "E09000019")) == 1
    assert len(services.store.transfers.view(event["id"])["deliveries"]) == 1


def test_another_authoritys_event_reusing_an_id_is_dead_lettered_not_taken_for_a_duplicate(
    services, broker_url, inbox
):
    first = examples.event(examples.ROUTINE_WITH_ISP, id="shared-id")
    reused = examples.event(examples.ROUTINE_WITH_ISP, id="shared-id", subject="CAF-NH-2026-0001")
    reused["data"]["from_authority"] = "E09000025"
    with running_worker(broker_url, services):
        publish(broker_url, examples.encode(first))
        wait_until(lambda: _delivered(inbox, "E09000019"))
        publish(broker_url, examples.encode(reused))
        ((properties, body),) = take(broker_url, DEAD_QUEUE, 1)

    assert body == examples.encode(reused)
    assert properties.headers["x-caf-rejection"] == "id_conflict"
    assert "unique across all publishers" in properties.headers[REASON_HEADER]
    assert len(_delivered(inbox, "E09000019")) == 1
    view = services.store.transfers.view("shared-id")
    assert (view["from_authority"], view["case_reference"]) == ("E09000012", first["subject"])
    actions = [a for _, a, _ in audit_actions(services.store, "shared-id")]
    assert "rejected" in actions and "duplicate" not in actions


def test_parked_and_withheld_transfers_are_stored_and_nothing_is_sent(services, broker_url, inbox):
    parked = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    withheld = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    with running_worker(broker_url, services):
        publish(broker_url, examples.encode(parked), examples.encode(withheld))
        wait_until(lambda: has_transfer(services.store, withheld["id"]))
        wait_until(lambda: has_transfer(services.store, parked["id"]))
    assert services.store.transfers.view(parked["id"])["state"] == "awaiting_judgement"
    assert services.store.transfers.view(withheld["id"])["state"] == "withheld"
    assert _delivered(inbox, "E09000030") == [] and _delivered(inbox, "E09000010") == []
    assert take(broker_url, DEAD_QUEUE, 1, timeout=0.5) == []


# A publisher's own x-delivery-count header, which RabbitMQ passes on with a first delivery,
# neither crashes the worker nor spends the message's deliveries.
@pytest.mark.parametrize(
    "headers",
    [None, {"x-delivery-count": "first"}, {"x-delivery-count": 4}],
    ids=["plain", "claims-a-word-for-a-count", "claims-its-retries-spent"],
)
def test_a_message_that_crashes_processing_is_dead_lettered_after_the_delivery_limit(
    services, broker_url, inbox, caplog, headers
):
    poison = examples.event(examples.ROUTINE_WITH_ISP, id="poison-message")
    valid = examples.event(examples.ROUTINE_WITH_ISP, id="valid-after-poison")
    relay = CrashesOn(services.relay, b"poison-message")

    with running_worker(broker_url, services, relay=relay):
        publish(broker_url, examples.encode(poison), examples.encode(valid), headers=headers)
        ((properties, body),) = take(broker_url, DEAD_QUEUE, 1)
        wait_until(lambda: _delivered(inbox, "E09000019"))

    assert body == examples.encode(poison)
    assert properties.headers["x-caf-rejection"] == "processing_failed"
    assert properties.headers[EVENT_ID_HEADER] == "poison-message"
    assert properties.headers[REASON_HEADER] == (
        "Processing failed on each of 5 deliveries; last: "
        "RuntimeError('cannot process this message')"
    )
    assert relay.attempts == 5
    assert services.store.transfers.view(valid["id"])["state"] == "delivered"
    ((_, _, detail),) = [
        r for r in audit_actions(services.store, "poison-message") if r[1] == "rejected"
    ]
    assert detail == {
        "rejection": "processing_failed",
        "reason": "Processing failed on each of 5 deliveries; the last error is in the dead "
        "letter's reason.",
        "sent_by": {"via": "amqp", "broker_user": "guest", "trusted": True},
    }
    # The log names the error's type, never its message, which may quote the event.
    failures = [r.getMessage() for r in caplog.records if "processing failed" in r.getMessage()]
    assert len(failures) == 4 and all(f.endswith(": RuntimeError") for f in failures)
    assert "cannot process this message" not in caplog.text


def test_one_batch_with_bad_input_a_duplicate_and_a_poison_message_loses_nothing(
    services, broker_url, inbox
):
    first = examples.event(examples.ROUTINE_WITH_ISP, id="batch-first")
    poison = examples.event(examples.ROUTINE_WITH_ISP, id="batch-poison")
    last = examples.event(examples.ROUTINE_WITH_ISP, id="batch-last", subject="CAF-HK-2026-0002")
    relay = CrashesOn(services.relay, b"batch-poison")
    bodies = [
        examples.encode(first),
        b"this is not json",
        examples.encode(first),
        examples.encode(poison),
        examples.encode(last),
    ]

    # Published before the worker starts, so that they arrive within one prefetch window.
    reset_topology(broker_url)
    publish(broker_url, *bodies)
    with running_worker(broker_url, services, relay=relay):
        dead = take(broker_url, DEAD_QUEUE, 2)
        wait_until(lambda: len(_delivered(inbox, "E09000019")) == 2)

    assert sorted(body for _, body in dead) == sorted([b"this is not json", bodies[3]])
    rejections = {body: properties.headers["x-caf-rejection"] for properties, body in dead}
    assert rejections == {b"this is not json": "not_json", bodies[3]: "processing_failed"}
    assert relay.attempts == 5
    for event in (first, last):
        assert services.store.transfers.view(event["id"])["state"] == "delivered"
    assert [a for _, a, _ in audit_actions(services.store, first["id"])].count("duplicate") == 1
    assert not has_transfer(services.store, poison["id"])
    assert services.audit.verify().intact


# Headers another client library may send: a time in milliseconds where AMQP has seconds (past
# year 9999), one so far ahead that pika reads an integer it cannot encode again, fractions
# (pika 1.4.4 read a float or double as its whole part), and headers that leave no room in
# their frame for the reason, and names pika reads as bytes, not being UTF-8. Each with what the
# dead letter keeps of them and how many it says it left out.
ODD_HEADERS = [
    pytest.param(
        {"sent-at": Raw(b"T", ">Q", 1_772_000_000_000)},
        {"sent-at": 1_772_000_000_000},
        None,
        id="timestamp-in-milliseconds",
    ),
    pytest.param(
        {"sent-at": Raw(b"T", ">Q", 2**64 - 1), "trace": "t-1"},
        {"sent-at": None, "trace": "t-1"},
        1,
        id="timestamp-past-2-to-the-63",
    ),
    pytest.param(
        {
            "score": Raw(b"d", ">d", 0.75),
            "ratio": Raw(b"f", ">f", 2.5),
            "big": Raw(b"d", ">d", 1e300),
        },
        {"score": 0.75, "ratio": 2.5, "big": 1e300},
        None,
        id="fractions",
    ),
    pytest.param({"trace": "t" * 131_000}, {"trace": None}, 1, id="headers-filling-the-frame"),
    pytest.param(
        {b"trace-\xff": "t-1", b"x-caf-event-id-\xff": "another-boroughs-event"},
        {b"trace-\xff": "t-1", b"x-caf-event-id-\xff": None},
        1,
        id="names-not-utf-8",
    ),
]


@pytest.mark.parametrize(("headers", "kept", "left_out"), ODD_HEADERS)
def test_a_message_with_odd_headers_is_taken_or_dead_lettered_and_blocks_nothing(
    services, broker_url, inbox, headers, kept, left_out
):
    valid = examples.event(examples.ROUTINE_WITH_ISP, id="valid-with-odd-headers")
    after = examples.event(examples.ROUTINE_WITH_ISP, id="after-odd-headers", subject="CAF-2")
    with running_worker(broker_url, services):
        with sending_raw_headers():
            publish(broker_url, b"{not json", examples.encode(valid), headers=headers)
        publish(broker_url, examples.encode(after))
        ((properties, body),) = take(broker_url, DEAD_QUEUE, 1)
        wait_until(lambda: len(_delivered(inbox, "E09000019")) == 2)

    assert body == b"{not json"
    assert properties.headers["x-caf-rejection"] == "not_json"
    assert properties.headers[REASON_HEADER].startswith("Not JSON: Expecting property name")
    assert {key: properties.headers.get(key) for key in headers} == kept
    assert properties.headers.get("x-caf-headers-left-out") == left_out
    for event in (valid, after):
        assert services.store.transfers.view(event["id"])["state"] == "delivered"
    rejected = [d["rejection"] for _, a, d in audit_actions(services.store) if a == "rejected"]
    assert rejected == ["not_json"], "refused once, not again on each new connection"


def _keys_given_twice(size: int) -> bytes:
    """A JSON object of about ``size`` bytes giving each of its keys twice: keys that are not
    fields' names, each refused in as many words as it takes bytes to give it twice."""
    names = ("".join(letters) for letters in itertools.product(string.ascii_uppercase, repeat=3))
    pairs = [f'"{name}": 0, "{name}": 0' for name in itertools.islice(names, size // 20)]
    return ("{" + ", ".join(pairs) + "}").encode()


def test_a_message_refused_at_length_is_dead_lettered_once_and_the_window_behind_it_arrives(
    services, broker_url, inbox
):
    """Its reason, which listed every key given twice, outgrew the frame its dead letter had to
    fit: the broker closed the connection on each try, and at the delivery limit dead-lettered
    it and the rest of the prefetch window unread, with no reason and nothing audited."""
    given_twice = _keys_given_twice(services.settings.max_event_bytes - 100)
    good = [examples.routine(f"behind-a-long-refusal-{i}", case=f"CAF-{i}") for i in range(15)]
    reset_topology(broker_url)
    # Published before the worker starts, so that they fill its prefetch window at once.
    publish(broker_url, given_twice, *map(examples.encode, good))
    with running_worker(broker_url, services):
        wait_until(lambda: len(_delivered(inbox, "E09000019")) == len(good), timeout=60)
        dead = take(broker_url, DEAD_QUEUE, 2, timeout=2)

    [(properties, body)] = dead
    assert body == given_twice
    assert properties.headers["x-caf-rejection"] == "not_json"
    assert properties.headers[REASON_HEADER] == (
        "Not JSON we accept: (a key not quoted), (a key not quoted), (a key not quoted), "
        "(a key not quoted), (a key not quoted) and 13097 more given twice in one object."
    )
    rejected = [d["reason"] for _, a, d in audit_actions(services.store) if a == "rejected"]
    assert rejected == [properties.headers[REASON_HEADER]]


def test_a_dead_letter_still_reaches_caf_dead_after_its_queue_was_deleted(
    services, broker_url, caplog
):
    reset_topology(broker_url)
    with running_worker(broker_url, services):
        delete_queue(broker_url, DEAD_QUEUE)  # by an operator, after the worker declared it
        publish(broker_url, b"{not json")
        # Logged once the broker confirmed the copy, so the queue is back by then.
        wait_until(lambda: "dead-lettered: Not JSON" in caplog.text, timeout=60)
        dead = take(broker_url, DEAD_QUEUE, 1)
    assert [(p.headers["x-caf-rejection"], body) for p, body in dead] == [
        ("not_json", b"{not json")
    ]


def test_a_dead_letter_the_broker_returned_is_not_quoted_in_the_logs(services, broker_url, caplog):
    configure_logging("INFO", "json")  # as every process starts
    reset_topology(broker_url)
    with caplog.at_level(logging.INFO), running_worker(broker_url, services):
        delete_queue(broker_url, DEAD_QUEUE)  # its copy comes back, body and all, once
        publish(broker_url, b'{"child": "Amara Okafor", not json')
        wait_until(lambda: "dead-lettered: Not JSON" in caplog.text, timeout=60)
    assert "caf.dead routed nothing" in caplog.text
    assert "Amara" not in caplog.text


def test_a_worker_that_loses_the_broker_says_so_once_a_try_in_its_own_words(
    services, broker_url, caplog
):
    configure_logging("INFO", "json")  # as every process starts
    reset_topology(broker_url)
    caplog.set_level(logging.WARNING)
    with tcp_proxy(BROKER_HOST, 5672) as proxy:
        through = broker_url.replace(f"{BROKER_HOST}:5672", f"127.0.0.1:{proxy.port}")
        with running_worker(through, services):
            proxy.close()  # the connection goes, and no new one is let in
            wait_until(lambda: caplog.text.count("reconnecting in") >= 3, timeout=30)
    said = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    worker_said = [m for name, _, m in said if name == "service.worker"][:3]
    assert worker_said[0].startswith("broker connection lost (StreamLostError")
    assert all("Connection refused" in m for m in worker_said[1:])
    assert [m.rsplit(" ", 1)[-1] for m in worker_said] == ["0.5s", "1.0s", "2.0s"]
    assert [line for line in said if line[0].startswith("pika")] == []


def test_each_outage_starts_the_backoff_and_the_outage_clock_afresh(
    services, broker_url, caplog, monkeypatch
):
    """A worker that rode out one broker restart waits 0.5 s again after the next, weeks later,
    and logs it as a WARNING, not as the continuation of an outage long over."""
    monkeypatch.setattr(worker_module, "OUTAGE_SECONDS", 0.3)  # less than one backoff
    configure_logging("INFO", "json")
    reset_topology(broker_url)
    caplog.set_level(logging.WARNING)
    with tcp_proxy(BROKER_HOST, 5672) as proxy:
        through = broker_url.replace(f"{BROKER_HOST}:5672", f"127.0.0.1:{proxy.port}")
        with running_worker(through, services) as worker:
            for _ in range(2):
                worker.ready.clear()
                proxy.cut()  # the broker restarts: new connections are taken again
                wait_until(lambda: worker.ready.is_set(), timeout=15)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "service.worker"]
    assert [(level, message.rsplit(" ", 1)[-1]) for level, message in lines] == [
        ("WARNING", "0.5s"),
        ("WARNING", "0.5s"),
    ]


@pytest.fixture
def silent_port():
    """A port that takes connections and never says a word, as a hung broker does."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.fixture
def untrusted_port(tmp_path):
    """A TLS port whose certificate no default trust store holds."""
    with HttpsReceiver(tmp_path / "tls") as receiver:
        yield urlsplit(receiver.url).port


@pytest.mark.parametrize(
    ("broker", "reason", "level"),
    [
        ("amqp://guest:guest@broker.invalid:5672/%2F", "gaierror", "WARNING"),
        (f"amqps://guest:guest@{BROKER_HOST}:5672/%2F", "WRONG_VERSION_NUMBER", "WARNING"),
        ("amqp://guest:guest@127.0.0.1:{silent_port}/%2F?stack_timeout=0.3", "Timeout", "WARNING"),
        ("amqps://guest:guest@127.0.0.1:{untrusted_port}/%2F", "CERTIFICATE_VERIFY", "ERROR"),
        (f"amqp://guest:not-the-password@{BROKER_HOST}:5672/%2F", "ACCESS_REFUSED", "ERROR"),
    ],
    ids=[
        "name-does-not-resolve",
        "tls-to-a-plain-port",
        "broker-never-answers",
        "certificate-not-trusted",
        "login-refused",
    ],
)
def test_a_worker_that_cannot_connect_keeps_trying_and_says_why_at_the_level_it_needs(
    services, silent_port, untrusted_port, caplog, broker, reason, level
):
    configure_logging("INFO", "json")
    caplog.set_level(logging.WARNING)
    worker = Worker(
        broker.format(silent_port=silent_port, untrusted_port=untrusted_port),
        services.relay,
        senders=services.senders,
        prefetch=16,
    )
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    try:
        wait_until(lambda: caplog.text.count("reconnecting in") >= 2, timeout=15)
        assert thread.is_alive(), "the worker gave up instead of trying again"
    finally:
        worker.stop()
        thread.join(5)
    assert not thread.is_alive()
    said = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    worker_said = [(lv, m) for name, lv, m in said if name == "service.worker"][:2]
    assert [lv for lv, _ in worker_said] == [level, level]
    assert all(m.startswith("broker connection lost (") and reason in m for _, m in worker_said)
    assert "not-the-password" not in caplog.text
    assert [line for line in said if line[0].startswith("pika")] == []


def test_a_worker_told_to_stop_while_waiting_out_a_database_outage_stops_at_once(
    services, broker_url, inbox, caplog
):
    refusing = refusing_changes(services)  # first: on SQLite the test stops here
    caplog.set_level(logging.WARNING, logger="service.worker")
    event = examples.event(examples.ROUTINE_WITH_ISP, id="held-through-a-stop")
    worker = Worker(broker_url, services.relay, senders=services.senders, prefetch=16)
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(15)
        with refusing:
            publish(broker_url, examples.encode(event))
            wait_until(lambda: "holding 1 messages for 4.0s" in caplog.text, timeout=30)
            worker.stop()  # as on SIGTERM, four seconds into its backoff
            thread.join(2)
            assert not thread.is_alive(), "the worker waited out its backoff before stopping"
    finally:
        worker.stop()
        thread.join(15)

    with running_worker(broker_url, services):  # the held message was handed back, not lost
        wait_until(lambda: _delivered(inbox, "E09000019"))
    assert services.store.transfers.view(event["id"])["state"] == "delivered"


def test_a_worker_whose_queue_was_deleted_declares_it_again_and_consumes_from_it(
    services, broker_url, inbox, caplog
):
    caplog.set_level(logging.WARNING, logger="service.worker")
    event = examples.event(examples.ROUTINE_WITH_ISP, id="after-the-queue-was-deleted")
    with running_worker(broker_url, services) as worker:
        delete_queue(broker_url, TRANSFERS_QUEUE)  # by an operator, with the worker consuming
        wait_until(lambda: "ConsumerCancelled" in caplog.text)
        wait_until(worker.ready.is_set)
        publish(broker_url, examples.encode(event))
        wait_until(lambda: _delivered(inbox, "E09000019"))
    assert services.store.transfers.view(event["id"])["state"] == "delivered"
    said = [(r.name, r.getMessage()) for r in caplog.records]
    assert said == [
        (
            "service.worker",
            "broker connection lost (ConsumerCancelled: Server cancelled consumer); "
            "reconnecting in 0.5s",
        )
    ]


def _refuses_more(channel) -> bool:
    try:
        channel.basic_publish(DEAD_QUEUE, "filler", b"filler", mandatory=True)
    except pika.exceptions.NackError:
        return True
    return False


def test_a_dead_letter_caf_dead_refuses_is_held_and_no_message_behind_it_is_lost(
    services, broker_url, inbox, caplog, monkeypatch
):
    """Dropping the connection on a refused dead letter, as on a lost one, handed back the whole
    prefetch window each time; after five times the broker dead-lettered the messages in it
    unread, and caf.dead, full, dropped them."""
    monkeypatch.setattr(retry, "FIRST_OUTAGE_WAIT_SECONDS", 0.1)
    monkeypatch.setattr(retry, "LONGEST_OUTAGE_WAIT_SECONDS", 0.2)
    caplog.set_level(logging.WARNING, logger="service.worker")
    reset_topology(broker_url)
    good = [examples.routine(f"behind-a-refused-letter-{i}", case=f"CAF-{i}") for i in range(15)]
    with queue_policy(broker_url, DEAD_QUEUE, '{"max-length": 1, "overflow": "reject-publish"}'):
        with broker_channel(broker_url) as channel:
            channel.confirm_delivery()
            wait_until(lambda: _refuses_more(channel))  # caf.dead is full
        # Published before the worker starts, so that they fill its prefetch window at once.
        publish(broker_url, b"{not json", *map(examples.encode, good))
        with running_worker(broker_url, services):
            wait_until(lambda: caplog.text.count("caf.dead refused a dead letter") >= 10)
            asked_to_stop = time.monotonic()
        assert time.monotonic() - asked_to_stop < 2, "held on, trying, after it was told to stop"
        with broker_channel(broker_url) as channel:
            channel.queue_purge(DEAD_QUEUE)  # an operator makes room
        with running_worker(broker_url, services):
            wait_until(lambda: len(_delivered(inbox, "E09000019")) == len(good))
            dead = take(broker_url, DEAD_QUEUE, 1)
    assert [(p.headers["x-caf-rejection"], body) for p, body in dead] == [
        ("not_json", b"{not json")
    ]
    assert all(services.store.transfers.view(e["id"])["state"] == "delivered" for e in good)
    said = {r.getMessage() for r in caplog.records if r.name == "service.worker"}
    assert said == {
        "caf.dead refused a dead letter (is it full?); holding the message, sending it again "
        f"in {seconds}s"
        for seconds in (0.1, 0.2)
    } | {
        "dead-lettered: Not JSON: Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)"
    }


def test_a_queue_declared_with_other_arguments_is_an_error_at_once_saying_which(
    services, broker_url, caplog
):
    configure_logging("INFO", "json")
    caplog.set_level(logging.WARNING, logger="service.worker")
    delete_queue(broker_url, TRANSFERS_QUEUE)
    with broker_channel(broker_url) as channel:  # by someone else, before the worker first started
        channel.queue_declare(TRANSFERS_QUEUE, durable=True, arguments={"x-queue-type": "classic"})
    worker = Worker(broker_url, services.relay, senders=services.senders, prefetch=16)
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    try:
        wait_until(lambda: "reconnecting in" in caplog.text)
    finally:
        worker.stop()
        thread.join(5)
        delete_queue(broker_url, TRANSFERS_QUEUE)
    first = next(r for r in caplog.records if r.name == "service.worker")
    assert first.levelname == "ERROR"
    assert "PRECONDITION_FAILED - inequivalent arg" in first.getMessage()
    assert "'caf.transfers'" in first.getMessage()
