"""`caf-relay worker` runs intake in its own process and delivery in a child: the two start,
stop and die together, so no delivery runs on unseen and none is left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import pytest
import sqlalchemy as sa

from service.store import tables as t
from tests.support import examples
from tests.support.amqp import publish, reset_topology, wait_until
from tests.support.cli import runner
from tests.support.https_receiver import https_recipients
from tests.support.processes import RelayProcess, consumers, running

pytestmark = pytest.mark.broker

ISLINGTON = "E09000019"


@pytest.fixture
def relay(services, broker_url, tmp_path):
    reset_topology(broker_url)
    log = (tmp_path / "worker.log").open("w")
    process = RelayProcess(services, broker_url).start(stderr=log)
    yield process
    if process.alive():
        process.stop()
    log.close()


def test_a_stopped_worker_stops_its_delivery_process(relay):
    delivery = relay.delivery_process()
    assert relay.stop() == 0
    assert not running(delivery)


def test_a_sigterm_reaching_the_delivery_process_too_is_left_to_the_worker(relay):
    """As when a supervisor signals the worker's whole process group: the delivery process
    does not stop on its own, so the worker's stop is clean."""
    delivery = relay.delivery_process()
    os.kill(delivery, signal.SIGTERM)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not running(delivery), timeout=2)
    assert running(delivery)
    assert relay.stop() == 0
    assert not running(delivery)


def test_a_killed_worker_takes_its_delivery_process_with_it(relay):
    delivery = relay.delivery_process()
    relay.kill()
    wait_until(lambda: not running(delivery), timeout=10)


def test_a_worker_whose_delivery_process_dies_stops_and_says_why(relay, tmp_path):
    os.kill(relay.delivery_process(), signal.SIGKILL)
    assert relay.process.wait(30) == 1
    log = (tmp_path / "worker.log").read_text()
    assert "delivery stopped; stopping the worker" in log
    assert "the delivery process ended (exit code -9)" in log


def test_a_worker_stopped_mid_stream_leaves_nothing_leased_to_itself(
    services, broker_url, relay, tmp_path
):
    """What intake stored in its last moments is handed over before delivery stops, and what
    delivery was handed and had not sent is given back: nothing waits for the lease to end."""
    release = threading.Event()

    def held_back(request):
        release.wait(120)  # until the worker is stopping, so envelopes are still waiting
        return 202, {}, b""

    with https_recipients(services, tmp_path, ISLINGTON) as receiver:
        receiver.answer = held_back
        try:
            events = [examples.routine(f"mid-{n:03d}", case=f"CAF-MID-{n:03d}") for n in range(300)]
            publish(broker_url, *(examples.encode(event) for event in events))
            receiver.wait_for(1, timeout=60)
            wait_until(lambda: _leased_to_worker(services) > 0, timeout=60)

            relay.process.send_signal(signal.SIGTERM)
            wait_until(lambda: consumers(broker_url) == 0, timeout=60)  # intake has stopped
            release.set()
            assert relay.process.wait(60) == 0
        finally:
            release.set()

    waiting, _ = services.store.outbox.summary()
    assert waiting > 0, "everything was delivered before the stop: nothing was tested"
    leased = _leased_to_worker(services)
    assert leased == 0, f"{leased} of {waiting} waiting envelopes still leased to the worker"


def _leased_to_worker(services) -> int:
    engine = sa.create_engine(services.store.url)
    with engine.connect() as connection:
        leased = connection.scalar(
            sa.select(sa.func.count()).where(t.OutboxItem.claimed_by == "test-worker")
        )
    engine.dispose()
    return leased


@pytest.mark.parametrize("command", ["worker", "deliver", "serve"])
def test_a_process_on_an_in_memory_database_is_refused_with_the_reason(
    services, broker_url, command
):
    """Each process, and each of the web app's threads, would open its own empty database, and
    lose it on stopping: the worker refused one, but ``serve`` started on it, its delivery
    thread finding no tables."""
    result = runner(services)(
        command, CAF_RELAY_DATABASE_URL="sqlite://", CAF_RELAY_BROKER_URL=broker_url
    )
    assert result.exit_code == 1
    assert "sqlite:// alone would be a database in memory, empty in each process" in result.output
