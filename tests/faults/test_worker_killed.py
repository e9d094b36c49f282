"""The worker is killed with SIGKILL at random points while 2,000 events stream through."""

import random
import threading
import time

from service.delivery_loop import GROUP
from tests.faults.conftest import duplicates, first_arrivals_in_order
from tests.support import examples
from tests.support.amqp import publish_resiliently, wait_until
from tests.support.https_receiver import event_ids
from tests.support.processes import RelayProcess

EVENTS = 2000
KILLS = 3
RECIPIENTS = ("E09000019", "E09000007", "E09000028", "E09000022", "E09000030")
DELIVERY_THREADS = 8


def test_every_event_arrives_despite_the_worker_being_killed(
    services, broker_url, receiver, report
):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    bodies = [
        examples.encode(
            examples.routine(
                f"kill-{n:05d}",
                case=f"K-{n % 40:02d}",
                to=RECIPIENTS[n % len(RECIPIENTS)],
            )
        )
        for n in range(EVENTS)
    ]
    relay = RelayProcess(services, broker_url, delivery_threads=str(DELIVERY_THREADS)).start()
    started = time.monotonic()
    publisher = threading.Thread(target=publish_resiliently, args=(broker_url, bodies))
    publisher.start()
    try:
        for fraction in sorted(rng.uniform(0.05, 0.85) for _ in range(KILLS)):
            wait_until(lambda f=fraction: len(receiver.requests) >= f * EVENTS, timeout=180)
            time.sleep(rng.uniform(0, 0.2))
            relay.kill()
            relay.start()
        publisher.join(120)
        wait_until(lambda: len(set(event_ids(receiver.requests))) >= EVENTS, timeout=300)
        elapsed = time.monotonic() - started
    finally:
        assert relay.stop() == 0

    requests = list(receiver.requests)
    arrived = event_ids(requests)
    envelope_ids: dict[str, set[str]] = {}
    for event_id, request in zip(arrived, requests, strict=True):
        envelope_ids.setdefault(event_id, set()).add(request.headers["X-Caf-Envelope-Id"])
    report(
        "worker killed",
        seed=seed,
        events=EVENTS,
        kills=KILLS,
        delivered=len(set(arrived)),
        duplicates=duplicates(requests),
        seconds=round(elapsed, 1),
    )
    assert set(arrived) == {f"kill-{n:05d}" for n in range(EVENTS)}, f"seed {seed}"
    assert all(len(ids) == 1 for ids in envelope_ids.values()), "a resend changed envelope id"
    # A kill loses the outcomes of what was in flight: each thread's group of envelopes.
    in_flight = DELIVERY_THREADS * GROUP
    assert duplicates(requests) <= KILLS * in_flight, "duplicates beyond in-flight"
    assert first_arrivals_in_order(requests, lambda event_id: int(event_id.split("-")[1]))
