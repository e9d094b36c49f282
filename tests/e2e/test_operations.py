"""Operations against the real broker: readiness, the broker's queues in the metrics, and the
worker's JSON log lines, each naming its event and none holding a child's details."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from service.broker_probe import BROKER_CHECK_SECONDS, PROBE_TIMEOUT_SECONDS
from service.secrets import SecretBox
from service.store.store import Store
from service.web import create_app
from service.worker import TRANSFERS_QUEUE
from tests.conftest import BROKER_HOST
from tests.support import examples
from tests.support.amqp import publish, reset_topology, running_worker, wait_until
from tests.support.children import child, transfer_of
from tests.support.processes import RelayProcess
from tests.support.tcp_proxy import tcp_proxy
from tests.support.tokens import bearer

pytestmark = pytest.mark.broker

ISLINGTON, CAMDEN = "E09000019", "E09000007"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _with(services, **settings):
    return dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, **settings)
    )


def test_ready_when_the_database_and_the_broker_answer(services, broker_url):
    response = create_app(_with(services, broker_url=broker_url)).test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "broker": "ok",
    }


def test_without_a_broker_configured_only_the_database_is_checked(services):
    body = create_app(services).test_client().get("/readyz").get_json()
    assert body["status"] == "ready" and list(body["checks"]) == ["database"]


def test_not_ready_when_the_broker_is_unreachable_saying_why_without_the_password(services):
    url = f"amqp://relay:broker-secret-9@127.0.0.1:{_closed_port()}/caf"
    response = create_app(_with(services, broker_url=url)).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "failed"
    assert body["checks"]["broker"]["detail"] == "AMQPConnectionError: Connection refused"
    assert "broker-secret-9" not in response.get_data(as_text=True)


def test_readiness_asked_again_and_again_opens_one_broker_connection_in_its_interval(
    services, broker_url
):
    """``/readyz`` needs no token: calls to it, however many and however close together, have
    the relay open one broker connection per BROKER_CHECK_SECONDS, and what it says is never
    older than that."""
    parts = urlsplit(broker_url)
    with tcp_proxy(BROKER_HOST, parts.port or 5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}{parts.path}"
        client = create_app(_with(services, broker_url=url)).test_client()
        with ThreadPoolExecutor(8) as callers:
            answers = list(callers.map(lambda _: client.get("/readyz").status_code, range(40)))
        assert answers == [200] * 40
        assert proxy.accepted == 1

        proxy.close()  # the broker is gone: the next check, once due, says so
        assert client.get("/readyz").status_code == 200
        time.sleep(BROKER_CHECK_SECONDS)
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["broker"]["status"] == "failed"
    assert proxy.accepted == 1


def test_not_ready_when_the_database_is_unreachable_saying_why_without_the_password(services):
    url = f"postgresql+psycopg://relay:db-secret-7@127.0.0.1:{_closed_port()}/caf"
    down = Store(url, SecretBox([Fernet.generate_key().decode()]))
    try:
        response = (
            create_app(dataclasses.replace(services, store=down)).test_client().get("/readyz")
        )
    finally:
        down.close()
    assert response.status_code == 503
    check = response.get_json()["checks"]["database"]
    assert check["status"] == "failed" and "OperationalError" in check["detail"]
    assert "db-secret-7" not in response.get_data(as_text=True)


def test_metrics_show_events_waiting_in_the_broker(services, broker_url):
    reset_topology(broker_url)
    publish(broker_url, *(examples.encode(examples.routine(f"waiting-{n}")) for n in range(3)))
    wait_until(lambda: _scrape(services, broker_url).get(("caf_relay_broker_up",)) == 1.0)
    metrics = _scrape(services, broker_url)
    assert metrics[("caf_relay_broker_queue_messages", ("queue", TRANSFERS_QUEUE))] == 3
    assert metrics[("caf_relay_broker_queue_messages", ("queue", "caf.dead"))] == 0

    down = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/"
    assert _scrape(services, down)[("caf_relay_broker_up",)] == 0


def test_metrics_say_whether_a_worker_takes_events_in(services, broker_url):
    """With no worker consuming caf.transfers, events wait unseen, though the broker and the
    database answer (``/readyz`` is ready): the consumers are what to alert on."""
    reset_topology(broker_url)
    consumers = ("caf_relay_broker_queue_consumers", ("queue", TRANSFERS_QUEUE))
    assert _scrape(services, broker_url)[consumers] == 0
    with running_worker(broker_url, services):
        assert _scrape(services, broker_url)[consumers] == 1
    wait_until(lambda: _scrape(services, broker_url)[consumers] == 0)


def test_scrapes_and_readiness_checks_keep_one_broker_connection_and_see_the_queues_now(
    services, broker_url
):
    """Two Prometheus servers scraping and an orchestrator probing ``/readyz`` have the web
    process open no broker connection of their own: it keeps one, opening another only when
    the broker has dropped it, and every figure is at most one interval old."""
    reset_topology(broker_url)
    waiting = ("caf_relay_broker_queue_messages", ("queue", TRANSFERS_QUEUE))
    up = ("caf_relay_broker_up",)
    with _proxied(broker_url) as (proxy, url):
        client = create_app(_with(services, broker_url=url)).test_client()
        with ThreadPoolExecutor(4) as callers:
            scrapes = list(callers.map(lambda _: _read(client, services), range(8)))
            ready = list(callers.map(lambda _: client.get("/readyz").status_code, range(8)))
        assert [(s[up], s[waiting]) for s in scrapes] == [(1, 0)] * 8
        assert ready == [200] * 8

        publish(broker_url, *(examples.encode(examples.routine(f"queued-{n}")) for n in range(2)))
        time.sleep(BROKER_CHECK_SECONDS)
        assert client.get("/readyz").status_code == 200
        assert _read(client, services)[waiting] == 2
        assert proxy.accepted == 1

        proxy.cut()  # the broker dropped the connection between two scrapes: not a broker down
        time.sleep(BROKER_CHECK_SECONDS)
        after = _read(client, services)
        assert (after[up], after[waiting]) == (1, 2)
        assert proxy.accepted == 2


def test_a_scrape_answers_within_seconds_when_the_broker_stops_answering(services, broker_url):
    """A broker that keeps the connection but answers nothing (overloaded, or cut off beyond
    the network's next hop) would hold a scrape until pika's heartbeat gave up, two minutes,
    past any Prometheus scrape timeout and gunicorn's worker timeout: it is a broker down."""
    with _proxied(broker_url) as (proxy, url):
        client = create_app(_with(services, broker_url=url)).test_client()
        assert _read(client, services)[("caf_relay_broker_up",)] == 1
        proxy.hold_answers()
        time.sleep(BROKER_CHECK_SECONDS)

        started = time.monotonic()
        metrics = _read(client, services)
        assert time.monotonic() - started < PROBE_TIMEOUT_SECONDS + 1
        assert metrics[("caf_relay_broker_up",)] == 0
        assert not any(name.startswith("caf_relay_broker_queue") for name, *_ in metrics)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["broker"]["detail"] == (
            f"TimeoutError: The broker did not answer within {PROBE_TIMEOUT_SECONDS} seconds."
        )


def test_a_reading_that_gets_no_thread_fails_saying_why_and_the_next_reads_the_broker(
    services, broker_url, monkeypatch
):
    """A web process at its thread limit (a container's pids limit) cannot start a reading's
    thread. That reading fails, saying why; the next, once a thread can be had, reads the
    broker. Not a 500, then every reading a timeout for good, waiting on one that never ran."""
    client = create_app(_with(services, broker_url=broker_url)).test_client()
    start = threading.Thread.start

    def no_thread(thread):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    refused = client.get("/readyz")
    monkeypatch.setattr(threading.Thread, "start", start)

    assert refused.status_code == 503
    assert refused.get_json()["checks"]["broker"]["detail"] == (
        "RuntimeError: can't start new thread"
    )
    time.sleep(BROKER_CHECK_SECONDS)
    assert client.get("/readyz").status_code == 200


@contextmanager
def _proxied(broker_url):
    """A proxy in front of the test broker, and the test vhost's URL through it."""
    parts = urlsplit(broker_url)
    with tcp_proxy(BROKER_HOST, parts.port or 5672) as proxy:
        yield proxy, f"amqp://guest:guest@127.0.0.1:{proxy.port}{parts.path}"


def _scrape(services, broker_url) -> dict[tuple, float]:
    return _read(create_app(_with(services, broker_url=broker_url)).test_client(), services)


def _read(client, services) -> dict[tuple, float]:
    response = client.get("/metrics", headers=bearer(services, "admin"))
    assert response.status_code == 200
    text = response.get_data(True)
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_worker_logs_json_lines_naming_each_event_and_no_child(services, broker_url, tmp_path):
    services.store.add_isp(examples.pan_london_isp())
    services.store.organisations.set_adapter(
        ISLINGTON, "directory", {"path": str(tmp_path / "inbox")}, {}
    )
    (tmp_path / "inbox").mkdir()
    children = [child(n) for n in (11, 12, 13)]
    delivered = transfer_of(examples.ROUTINE_WITH_ISP, "log-delivered", children[0])
    no_adapter = transfer_of(examples.ROUTINE_WITH_ISP, "log-no-adapter", children[1])
    no_adapter["data"]["to_authority"] = CAMDEN
    refused = transfer_of(examples.ROUTINE_WITH_ISP, "log-refused", children[2])
    refused["data"]["sharing"]["mode"] = "sideways"
    log_file = tmp_path / "worker.log"

    def _view(event_id):
        return services.store.transfers.view(event_id) or {}

    reset_topology(broker_url)
    with log_file.open("wb") as stderr:
        relay = RelayProcess(services, broker_url).start(stderr=stderr)
        try:
            publish(broker_url, *(examples.encode(e) for e in (delivered, no_adapter, refused)))
            wait_until(lambda: _view("log-delivered").get("state") == "delivered")
            wait_until(lambda: _view("log-no-adapter").get("deliveries"))
        finally:
            assert relay.stop() == 0

    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    about = {}
    for line in lines:
        about.setdefault(line.get("event_id"), []).append(line["message"])
    assert any(m.startswith("delivery delivered") for m in about["log-delivered"])
    assert any("No adapter is configured" in m for m in about["log-no-adapter"])
    assert any(m.startswith("dead-lettered") for m in about["log-refused"])
    delivery_lines = [line for line in lines if line["logger"] == "service.delivery"]
    assert delivery_lines and all(line.get("event_id") for line in delivery_lines)
    for identity in children:
        for field in ("given_name", "family_name", "nhs_number", "unique_pupil_number"):
            assert identity[field] not in text
