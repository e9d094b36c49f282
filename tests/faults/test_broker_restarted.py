"""RabbitMQ is restarted in the middle of a stream; the worker must recover by itself."""

import subprocess
import threading
import time

from tests.faults.conftest import duplicates
from tests.support import examples
from tests.support.amqp import publish_resiliently, wait_until
from tests.support.https_receiver import event_ids
from tests.support.processes import RelayProcess

EVENTS = 1000


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def test_a_broker_restart_mid_stream_loses_nothing(services, broker_url, receiver, report):
    bodies = [
        examples.encode(examples.routine(f"restart-{n:05d}", case=f"R-{n % 25}"))
        for n in range(EVENTS)
    ]
    relay = RelayProcess(services, broker_url).start()
    resent: list[int] = []
    publisher = threading.Thread(
        target=lambda: resent.append(publish_resiliently(broker_url, bodies))
    )
    started = time.monotonic()
    publisher.start()
    try:
        wait_until(lambda: len(receiver.requests) >= EVENTS // 4, timeout=120)
        down = time.monotonic()
        _rabbitmqctl("stop_app")
        time.sleep(2)
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")
        outage = time.monotonic() - down
        publisher.join(180)
        wait_until(lambda: len(set(event_ids(receiver.requests))) >= EVENTS, timeout=300)
        assert relay.alive(), "the worker did not survive the broker restart"
    finally:
        assert relay.stop() == 0

    requests = list(receiver.requests)
    report(
        "broker restarted",
        events=EVENTS,
        broker_down_seconds=round(outage, 1),
        publisher_resends=resent[0] if resent else "n/a",
        duplicates_at_receiver=duplicates(requests),
        seconds=round(time.monotonic() - started, 1),
    )
    assert sorted(event_ids(requests)) == sorted(f"restart-{n:05d}" for n in range(EVENTS))
