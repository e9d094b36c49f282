"""`caf-relay worker` runs intake in its own process and delivery in a child: the two start,
stop and die together, so no delivery runs on unseen and none is left behind."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.amqp import reset_topology, wait_until
from tests.support.processes import RelayProcess, running

pytestmark = pytest.mark.broker


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
