"""The three built-in adapters against real receivers: a TLS server, RabbitMQ, a folder."""

import logging
import re
import socket
import subprocess
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import pika
import pytest

from adapters.amqp import AmqpAdapter
from adapters.amqp_publisher import CLOSE_SECONDS
from adapters.base import Adapter, DeliveryFailed, OutboundEnvelope, Receipt
from adapters.registry import AdapterConfigError, adapter_type, build_adapter
from service.logs import configure_logging
from service.signing import KeyRing, verify
from tests.conftest import BROKER_HOST, rabbitmqctl
from tests.support.https_receiver import HttpsReceiver
from tests.support.tcp_proxy import tcp_proxy

TOKEN = "islington-inbox-token-7d1e"


@pytest.fixture
def keyring(tmp_path):
    return KeyRing.from_file(tmp_path / "signing-key.pem", create=True)


@pytest.fixture
def envelope(keyring):
    envelope_id = str(uuid.uuid4())
    jws = keyring.sign({"envelope_id": envelope_id, "note": "adapter test"})
    return OutboundEnvelope(envelope_id, "event-1", "E09000019", jws, "0" * 64)


@pytest.fixture
def receiver(tmp_path):
    with HttpsReceiver(tmp_path / "tls") as running:
        yield running


def _https(receiver, **settings):
    return build_adapter(
        "https",
        {"url": receiver.url, "ca_bundle": str(receiver.ca_bundle), **settings},
        {"bearer_token": TOKEN},
    )


def test_the_three_built_in_adapters_are_found_by_entry_point():
    for name in ("https", "amqp", "directory"):
        assert issubclass(adapter_type(name), Adapter)


def test_an_unknown_adapter_type_names_the_installed_ones():
    with pytest.raises(AdapterConfigError, match="Unknown adapter type 'sftp'.*directory"):
        build_adapter("sftp", {}, {})


def test_https_posts_the_signed_envelope_as_jose_json_with_the_bearer_token(
    receiver, envelope, keyring
):
    receipt = _https(receiver).deliver(envelope)

    (request,) = receiver.wait_for(1)
    assert request.path == "/caf/inbox"
    assert request.headers["Content-Type"] == "application/jose+json"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Caf-Envelope-Id"] == envelope.envelope_id
    _, payload = verify(request.body, keyring.jwks())
    assert payload["envelope_id"] == envelope.envelope_id
    assert "HTTP 202" in receipt.detail and TOKEN not in receipt.detail


@pytest.mark.parametrize(
    ("status", "retryable"),
    # A redirect is not followed, and the envelope has not reached the case system behind it.
    [(503, True), (429, True), (400, False), (401, False), (302, False), (307, False)],
)
def test_https_failures_say_whether_a_retry_can_help(receiver, envelope, status, retryable):
    receiver.respond_with(status)
    with pytest.raises(DeliveryFailed) as failed:
        _https(receiver).deliver(envelope)
    assert failed.value.retryable is retryable
    assert f"HTTP {status}" in failed.value.reason and TOKEN not in failed.value.reason


def test_https_refuses_a_server_it_cannot_verify_and_sends_nothing(receiver, envelope):
    adapter = build_adapter("https", {"url": receiver.url}, {"bearer_token": TOKEN})
    with pytest.raises(DeliveryFailed, match="TLS verification") as failed:
        adapter.deliver(envelope)
    assert failed.value.retryable is False
    assert receiver.requests == []


def _receipt_answer(request):
    return 200, {"Content-Type": "application/jose+json"}, b'{"payload":"cmVjZWlwdA"}'


def test_https_takes_a_signed_receipt_sent_in_time(receiver, envelope):
    receiver.answer = _receipt_answer
    receipt = _https(receiver).deliver(envelope)
    assert receipt.signed == '{"payload":"cmVjZWlwdA"}'


def test_https_stops_reading_a_receipt_that_outlasts_the_attempt_and_keeps_the_delivery(
    receiver, envelope
):
    # 24 bytes 0.3 s apart: each read is well within the read timeout, the whole receipt
    # (over 7 s) well past the attempt's 4 s.
    receiver.answer, receiver.drip_seconds = _receipt_answer, 0.3
    adapter = _https(receiver, connect_timeout_seconds=2, read_timeout_seconds=2)
    started = time.monotonic()
    receipt = adapter.deliver(envelope)
    assert time.monotonic() - started < 4 + 1
    assert "HTTP 200" in receipt.detail and receipt.signed is None
    assert len(receiver.requests) == 1


def test_https_ends_an_attempt_whose_upload_is_read_too_slowly_and_says_so(receiver, keyring):
    # A handshake of 1.5 s (within the connect timeout), then 8 MiB read 64 KiB every 0.05 s:
    # the attempt's 2.5 s end it mid-upload, which TLS reports as an error of its own. It is a
    # failure to retry, not a bad certificate.
    receiver.handshake_pause, receiver.read_pause = 1.5, 0.05
    big = OutboundEnvelope("big", "event-big", "E09000019", "x" * 8 * 1024 * 1024, "0" * 64)
    adapter = _https(receiver, connect_timeout_seconds=2, read_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failed:
        adapter.deliver(big)
    assert time.monotonic() - started < 2.5 + 1
    assert failed.value.reason.startswith(f"No whole answer from {receiver.url} within 2.5 s")
    assert failed.value.retryable
    assert receiver.requests == []


def test_https_ends_an_attempt_whose_answer_trickles_in_within_its_timeouts(receiver, envelope):
    # The answer a byte every 0.5 s: each read well within the read timeout, its status line
    # alone (6 s) past the attempt's 2.5 s; unbounded, a whole answer could outlast the lease.
    receiver.drip_seconds, receiver.drip_headers = 0.5, True
    adapter = _https(receiver, connect_timeout_seconds=1, read_timeout_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failed:
        adapter.deliver(envelope)
    assert time.monotonic() - started < 2.5 + 1
    assert failed.value.reason == (
        f"No whole answer from {receiver.url} within 2.5 s, its connect and read timeouts together"
    )
    assert failed.value.retryable
    assert len(receiver.requests) == 1


def test_https_with_a_ca_bundle_that_is_not_there_fails_saying_so(receiver, envelope, tmp_path):
    adapter = _https(receiver, ca_bundle=str(tmp_path / "no-such-ca.pem"))
    with pytest.raises(DeliveryFailed, match="ca_bundle cannot be used") as failed:
        adapter.deliver(envelope)
    assert failed.value.retryable is False
    assert "no-such-ca.pem" in failed.value.reason
    assert receiver.requests == []


def test_https_to_a_closed_port_is_a_retryable_failure(envelope):
    adapter = build_adapter(
        "https",
        {"url": "https://127.0.0.1:9/caf", "connect_timeout_seconds": 1},
        {"bearer_token": TOKEN},
    )
    with pytest.raises(DeliveryFailed, match="ConnectionError") as failed:
        adapter.deliver(envelope)
    assert failed.value.retryable is True


def _closing_in_the_handshake(listener: socket.socket) -> None:
    """Take the ClientHello, then close, as a load balancer with no server behind it may."""
    connection, _ = listener.accept()
    connection.settimeout(0.5)
    with suppress(TimeoutError):
        while connection.recv(65536):
            pass
    connection.close()


def test_https_to_a_server_that_closes_during_the_handshake_is_a_retryable_failure(envelope):
    # Before, the transfer failed at once, its detail saying "TLS verification ... failed",
    # though no certificate had been seen.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=_closing_in_the_handshake, args=(listener,), daemon=True).start()
        adapter = build_adapter(
            "https",
            {"url": f"https://127.0.0.1:{listener.getsockname()[1]}/caf"},
            {"bearer_token": TOKEN},
        )
        with pytest.raises(DeliveryFailed) as failed:
            adapter.deliver(envelope)
    assert failed.value.retryable is True
    assert "verification" not in failed.value.reason
    assert "EOF occurred in violation of protocol" in failed.value.reason


def test_https_configuration_errors_name_the_field():
    with pytest.raises(AdapterConfigError) as invalid:
        build_adapter("https", {"url": "http://plain.example/caf"}, {"bearer_token": "short"})
    assert invalid.value.errors == {
        "settings": {"url": ["Must be an https:// URL."]},
        "secrets": {"bearer_token": ["Length must be between 16 and 4096."]},
    }


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://user:pass@borough.example/caf", "Must not hold credentials"),
        ("https://borough.example/caf?token=abc", "Must have no query or fragment"),
        ("https://borough.example:70000/caf", "Must have a port (if any) from 1 to 65535."),
        # Before, accepted, then every delivery failed (retried) as "InvalidURL posting to ...".
        (
            "https://\u0660borough.example/caf",
            "Must be a URL the HTTPS client can use: Failed to parse: Name '\u0660borough' is "
            "not a valid IDNA label",
        ),
    ],
)
def test_https_refuses_a_url_it_cannot_use_or_holding_a_secret_the_audit_would_show(url, error):
    with pytest.raises(AdapterConfigError) as invalid:
        build_adapter("https", {"url": url}, {"bearer_token": "a-token-of-sixteen-or-more"})
    assert invalid.value.errors["settings"]["url"][0].startswith(error)


@dataclass
class BoroughBroker:
    """An exchange and queue standing in for a borough's own broker, in the test vhost."""

    broker_url: str
    exchange: str
    queue: str

    @property
    def settings(self) -> dict:
        parts = urlsplit(self.broker_url)
        url = f"amqp://{parts.hostname}:{parts.port}{parts.path}"
        return {"url": url, "exchange": self.exchange, "routing_key": "caf.inbox"}

    @property
    def vhost(self) -> str:
        return unquote(urlsplit(self.broker_url).path.lstrip("/"))

    def channel(self):
        return pika.BlockingConnection(pika.URLParameters(self.broker_url)).channel()

    def received(self) -> list[tuple]:
        channel = self.channel()
        messages = []
        while (message := channel.basic_get(self.queue, auto_ack=True))[0] is not None:
            messages.append(message[1:])
        channel.connection.close()
        return messages


@pytest.fixture
def borough_broker(broker_url):
    borough = BoroughBroker(
        broker_url, f"borough-{uuid.uuid4().hex[:8]}", f"inbox-{uuid.uuid4().hex[:8]}"
    )
    channel = borough.channel()
    channel.exchange_declare(borough.exchange, "direct", durable=True)
    channel.queue_declare(borough.queue, durable=True)
    channel.queue_bind(borough.queue, borough.exchange, "caf.inbox")
    channel.connection.close()
    yield borough
    channel = borough.channel()
    channel.queue_delete(borough.queue)
    channel.exchange_delete(borough.exchange)
    channel.connection.close()


GUEST = {"username": "guest", "password": "guest"}


def test_amqp_publishes_the_envelope_persistently_and_is_confirmed(
    borough_broker, envelope, keyring
):
    adapter = build_adapter("amqp", borough_broker.settings, GUEST)
    try:
        receipt = adapter.deliver(envelope)
    finally:
        adapter.close()

    ((properties, body),) = borough_broker.received()
    assert properties.content_type == "application/jose+json"
    assert properties.delivery_mode == 2
    assert properties.message_id == envelope.envelope_id
    assert properties.headers == {"x-caf-event-id": envelope.event_id}
    assert verify(body, keyring.jwks())[1]["envelope_id"] == envelope.envelope_id
    assert "confirmed" in receipt.detail


def _envelopes(keyring, count: int) -> list[OutboundEnvelope]:
    made = []
    for n in range(count):
        envelope_id = str(uuid.uuid4())
        jws = keyring.sign({"envelope_id": envelope_id, "note": f"group member {n}"})
        made.append(OutboundEnvelope(envelope_id, f"event-{n}", "E09000019", jws, "0" * 64))
    return made


def test_amqp_delivers_a_group_together_each_confirmed_and_in_order(borough_broker, keyring):
    envelopes = _envelopes(keyring, 12)
    adapter = build_adapter("amqp", borough_broker.settings, GUEST)
    try:
        outcomes = adapter.deliver_group(envelopes)
    finally:
        adapter.close()

    assert all(isinstance(outcome, Receipt) for outcome in outcomes)
    received = borough_broker.received()
    assert [properties.message_id for properties, _ in received] == [
        envelope.envelope_id for envelope in envelopes
    ]
    assert all(properties.delivery_mode == 2 for properties, _ in received)


def test_amqp_says_of_each_envelope_in_a_group_whether_the_broker_took_it(borough_broker, keyring):
    # A queue that refuses what would make it longer than 2: the broker nacks the rest.
    channel = borough_broker.channel()
    channel.queue_delete(borough_broker.queue)
    channel.queue_declare(
        borough_broker.queue,
        durable=True,
        arguments={"x-max-length": 2, "x-overflow": "reject-publish"},
    )
    channel.queue_bind(borough_broker.queue, borough_broker.exchange, "caf.inbox")
    channel.connection.close()
    envelopes = _envelopes(keyring, 5)
    adapter = build_adapter("amqp", borough_broker.settings, GUEST)
    try:
        outcomes = adapter.deliver_group(envelopes)
        taken = [properties.message_id for properties, _ in borough_broker.received()]
        again = adapter.deliver_group(envelopes[2:4])  # room again: the same connection goes on
    finally:
        adapter.close()

    assert [type(outcome) for outcome in outcomes] == [Receipt] * 2 + [DeliveryFailed] * 3
    assert all("refused the envelope" in outcome.reason for outcome in outcomes[2:])
    assert all(outcome.retryable for outcome in outcomes[2:])
    assert taken == [envelope.envelope_id for envelope in envelopes[:2]]
    assert [type(outcome) for outcome in again] == [Receipt] * 2


def test_amqp_to_an_exchange_that_is_not_there_says_what_the_broker_said(borough_broker, keyring):
    settings = {**borough_broker.settings, "exchange": "no-such-exchange"}
    adapter = build_adapter("amqp", settings, GUEST)
    try:
        outcomes = adapter.deliver_group(_envelopes(keyring, 3))
    finally:
        adapter.close()
    assert all(isinstance(outcome, DeliveryFailed) for outcome in outcomes)
    assert all("closed the channel: 404 NOT_FOUND" in outcome.reason for outcome in outcomes)
    assert all(outcome.retryable for outcome in outcomes)  # the borough may declare it yet


def test_amqp_not_let_write_to_the_exchange_says_what_the_broker_said(keyring):
    """The broker closes the channel on a publish the user may not make (403), as on one to an
    exchange not there: the failure quotes it, and goes again on the outbox's schedule, as the
    borough's admin may grant the right."""
    vhost = f"caf-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", "^$", ".*")  # writes nowhere
        settings = {
            "url": f"amqp://{BROKER_HOST}:5672/{vhost}",
            "exchange": "x",
            "routing_key": "k",
        }
        adapter = build_adapter("amqp", settings, GUEST)
        try:
            outcomes = adapter.deliver_group(_envelopes(keyring, 2))
        finally:
            adapter.close()
    finally:
        rabbitmqctl("delete_vhost", vhost)
    said = (
        f"Broker {BROKER_HOST}:5672 closed the channel: 403 ACCESS_REFUSED - access to exchange "
        f"'x' in vhost '{vhost}' refused for user 'guest'"
    )
    assert [(str(outcome), outcome.retryable) for outcome in outcomes] == [(said, True)] * 2


def test_amqp_declares_its_exchange_when_asked_before_it_publishes(borough_broker, envelope):
    exchange = f"declared-{uuid.uuid4().hex[:8]}"
    settings = {**borough_broker.settings, "exchange": exchange, "declare_exchange": True}
    adapter = build_adapter("amqp", settings, GUEST)
    try:
        with pytest.raises(DeliveryFailed, match="routed nothing"):  # no queue bound yet
            adapter.deliver(envelope)
    finally:
        adapter.close()
    channel = borough_broker.channel()
    try:
        channel.exchange_declare(exchange, "topic", durable=True, passive=True)
    finally:
        channel.exchange_delete(exchange)
        channel.connection.close()


def test_amqp_reports_an_envelope_no_queue_would_take(borough_broker, envelope):
    adapter = build_adapter("amqp", {**borough_broker.settings, "routing_key": "nowhere"}, GUEST)
    try:
        with pytest.raises(DeliveryFailed, match="routed nothing"):
            adapter.deliver(envelope)
    finally:
        adapter.close()


def _through(proxy, borough_broker) -> dict:
    return {
        **borough_broker.settings,
        "url": f"amqp://127.0.0.1:{proxy.port}/{quote(borough_broker.vhost, safe='')}",
    }


def test_amqp_loses_no_envelope_of_a_group_whose_connection_is_cut_midway_and_says_so_once(
    borough_broker, keyring, caplog
):
    configure_logging("INFO", "json")  # as every process starts
    caplog.set_level(logging.WARNING)
    envelopes = _envelopes(keyring, 12)
    with tcp_proxy(BROKER_HOST, 5672) as proxy:
        adapter = build_adapter("amqp", _through(proxy, borough_broker), GUEST)
        try:
            adapter.deliver_group(envelopes[:1])  # the connection is open, kept
            proxy.cut_after(3 * len(envelopes[0].jws))  # a few messages into the group
            outcomes = adapter.deliver_group(envelopes[1:])
        finally:
            adapter.close()
        assert proxy.cuts == 1

    assert all(isinstance(outcome, Receipt) for outcome in outcomes)
    received = {properties.message_id for properties, _ in borough_broker.received()}
    # Sent again on a new connection: some may have arrived twice, none is missing.
    assert received == {envelope.envelope_id for envelope in envelopes}
    said = [(record.name, record.getMessage()) for record in caplog.records]
    assert [name for name, _ in said] == ["adapters.amqp"]
    assert re.fullmatch(
        rf"broker 127\.0\.0\.1:{proxy.port} unreachable: StreamLostError; "
        r"sending \d+ of 11 envelopes again on a new connection",
        said[0][1],
    )


def test_amqp_fails_a_group_a_silent_broker_does_not_confirm_in_time_and_sends_it_once(
    borough_broker, keyring
):
    """And a second group for the borough (its other delivery thread), waiting for the
    connection meanwhile, gives up within the attempt unsent, rather than outlast the lease."""
    envelopes = _envelopes(keyring, 5)
    outcomes, took = {}, {}

    def deliver(name, group):
        started = time.monotonic()
        outcomes[name] = adapter.deliver_group(group)
        took[name] = time.monotonic() - started

    with tcp_proxy(BROKER_HOST, 5672) as proxy:
        parameters = pika.URLParameters(_through(proxy, borough_broker)["url"])
        parameters.credentials = pika.PlainCredentials(GUEST["username"], GUEST["password"])
        parameters.stack_timeout = 0.5  # opening (and a moment more) fits in the attempt
        settings = borough_broker.settings
        adapter = AmqpAdapter(
            parameters, settings["exchange"], settings["routing_key"], False, attempt_seconds=2
        )
        try:
            assert isinstance(adapter.deliver(envelopes[0]), Receipt)
            proxy.hold_answers()
            first = threading.Thread(target=deliver, args=("first", envelopes[1:3]))
            first.start()
            time.sleep(0.1)
            deliver("second", envelopes[3:])
            first.join()
        finally:
            adapter.close()

    assert [type(outcome) for outcome in outcomes["first"]] == [DeliveryFailed] * 2
    assert all("did not confirm in the time allowed" in o.reason for o in outcomes["first"])
    assert [o.reason for o in outcomes["second"]] == [
        f"Broker 127.0.0.1:{proxy.port} was not tried: another group for this borough held "
        "the connection"
    ] * 2
    assert all(o.retryable for o in outcomes["first"] + outcomes["second"])
    assert took["first"] < 2 + CLOSE_SECONDS + 1 and took["second"] < 2
    # The broker got each of the first group once; a slow broker is not sent it again within
    # the attempt, and the second group not at all.
    received = [properties.message_id for properties, _ in borough_broker.received()]
    assert received == [envelope.envelope_id for envelope in envelopes[:3]]


def test_amqp_adapter_once_closed_sends_nothing_more(borough_broker, envelope):
    adapter = build_adapter("amqp", borough_broker.settings, GUEST)
    adapter.close()  # as when its authority's configuration changed
    with pytest.raises(DeliveryFailed, match="was not tried: the adapter was closed") as failed:
        adapter.deliver(envelope)
    assert failed.value.retryable
    assert borough_broker.received() == []


def _drop_connections(borough_broker) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", borough_broker.vhost, "test"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_amqp_reconnects_once_when_the_broker_dropped_its_connection(borough_broker, envelope):
    adapter = build_adapter("amqp", borough_broker.settings, GUEST)
    try:
        adapter.deliver(envelope)
        _drop_connections(borough_broker)
        adapter.deliver(envelope)
    finally:
        adapter.close()
    assert len(borough_broker.received()) == 2


def test_amqp_says_why_the_publish_after_a_reconnect_failed(borough_broker, envelope):
    adapter = build_adapter("amqp", borough_broker.settings, GUEST)
    try:
        adapter.deliver(envelope)
        _drop_connections(borough_broker)
        channel = borough_broker.channel()
        channel.queue_unbind(borough_broker.queue, borough_broker.exchange, "caf.inbox")
        channel.connection.close()
        with pytest.raises(DeliveryFailed, match="routed nothing") as failed:
            adapter.deliver(envelope)
    finally:
        adapter.close()
    assert failed.value.retryable


AMQP_URL_REFUSED = (
    "Must be an amqp:// or amqps:// URL with a host, and a port (if any) from 1 to 65535."
)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("amqp://guest:guest@127.0.0.1/", "Must not hold credentials; give them as secrets."),
        (
            "amqps://h/?ssl_options={}",
            "Must have no query: the relay sets the connection's options.",
        ),
        *(
            (url, AMQP_URL_REFUSED)
            for url in ("amqp://[broker", "amqp://broker.example:notaport/caf", "amqp://h:70000/")
        ),
        # Before, accepted, then every delivery failed (retried) as "unreachable".
        (
            f"amqp://{'ü' * 64}.example/",
            "Must have a host name valid in IDNA, each label 1 to 63 characters.",
        ),
    ],
)
def test_amqp_refuses_a_url_it_cannot_use_or_holding_credentials_or_options(url, error):
    with pytest.raises(AdapterConfigError) as invalid:
        build_adapter(
            "amqp",
            {"url": url, "exchange": "x", "routing_key": "k"},
            {"username": "guest", "password": "guest"},
        )
    assert invalid.value.errors["settings"]["url"] == [error]


def test_amqp_refuses_an_exchange_or_routing_key_longer_than_amqp_carries():
    # 128 characters, but 256 bytes in UTF-8: before, accepted, then every delivery failed as
    # "Broker ... unreachable: ShortStringTooLong", each on a second connection too.
    too_long, longest = "é" * 128, "é" * 127 + "x"
    with pytest.raises(AdapterConfigError) as invalid:
        build_adapter(
            "amqp",
            {"url": "amqp://127.0.0.1/", "exchange": too_long, "routing_key": too_long},
            {"username": "guest", "password": "guest"},
        )
    refused = ["Must be at most 255 bytes in UTF-8."]
    assert invalid.value.errors["settings"] == {"exchange": refused, "routing_key": refused}
    settings = {"url": "amqp://127.0.0.1/", "exchange": longest, "routing_key": longest}
    build_adapter("amqp", settings, {"username": "guest", "password": "guest"}).close()


def test_directory_writes_the_envelope_whole_under_its_id(tmp_path, envelope, keyring):
    inbox = tmp_path / "inbox" / "islington"
    build_adapter("directory", {"path": str(inbox)}, {}).deliver(envelope)

    assert [p.name for p in inbox.iterdir()] == [f"{envelope.envelope_id}.json"]
    written = (inbox / f"{envelope.envelope_id}.json").read_text()
    assert verify(written, keyring.jwks())[1]["envelope_id"] == envelope.envelope_id


def test_directory_that_cannot_be_written_is_a_failure_with_the_path(tmp_path, envelope):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(DeliveryFailed, match="not-a-folder"):
        build_adapter("directory", {"path": str(blocker)}, {}).deliver(envelope)


@pytest.mark.parametrize(
    ("vhost", "secrets", "said"),
    [
        (
            "%2F",
            {**GUEST, "password": "not-the-password"},
            "refused the login: 403 ACCESS_REFUSED - Login was refused using authentication "
            "mechanism PLAIN. For details see the broker logfile.",
        ),
        ("no-such-vhost", GUEST, "refused the connection: 530 NOT_ALLOWED - vhost no-such-vhost"),
    ],
    ids=["password", "vhost"],
)
def test_amqp_refused_by_the_broker_says_so_in_its_words_once_and_tries_once(
    envelope, caplog, vhost, secrets, said
):
    configure_logging("INFO", "json")
    caplog.set_level(logging.WARNING)
    failed = _amqp_failure(f"amqp://{BROKER_HOST}:5672/{vhost}", secrets, envelope)
    assert str(failed).startswith(f"Broker {BROKER_HOST}:5672 {said}")
    assert failed.retryable  # once the admin has put it right
    [line] = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert line == ("adapters.amqp", "WARNING", str(failed).replace("Broker", "broker", 1))
    assert "not-the-password" not in caplog.text


def test_amqp_to_a_closed_port_says_the_connection_was_refused(envelope):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    failed = _amqp_failure(f"amqp://127.0.0.1:{port}/%2F", GUEST, envelope)
    assert str(failed) == (
        f"Broker 127.0.0.1:{port} unreachable: AMQPConnectionError (Connection refused)"
    )
    assert failed.retryable


def _amqp_failure(url: str, secrets: dict, envelope: OutboundEnvelope) -> DeliveryFailed:
    """What an amqp adapter to ``url`` raises delivering ``envelope``."""
    adapter = build_adapter("amqp", {"url": url, "exchange": "x", "routing_key": "k"}, secrets)
    try:
        with pytest.raises(DeliveryFailed) as failed:
            adapter.deliver(envelope)
    finally:
        adapter.close()
    return failed.value
