"""One recipient answers 503 for a while; its transfers arrive once, in order, and the other
recipient's are not held up: each arrives soon after the relay stored it, outage or not."""

import threading
import time
from datetime import datetime

from tests.faults.conftest import first_arrivals_in_order
from tests.support import examples
from tests.support.amqp import publish, wait_until
from tests.support.processes import RelayProcess

DOWN, UP = "E09000019", "E09000007"
PER_RECIPIENT = 100
OUTAGE_SECONDS = 5.0


def test_a_recipient_that_is_down_gets_everything_later_and_delays_nobody(
    services, broker_url, receiver, report
):
    accepted, lock = [], threading.Lock()
    outage_ends = [float("inf")]

    def answer(request):
        if request.authority == DOWN and time.time() < outage_ends[0]:
            return 503, {"Retry-After": "1"}, b""
        with lock:
            accepted.append(request)
        return 202, {}, b""

    receiver.answer = answer
    relay = RelayProcess(
        services,
        broker_url,
        retry_base_delay_seconds="0.2",
        retry_max_delay_seconds="1",
        retry_max_attempts="1000",
    ).start()
    bodies = [
        examples.encode(examples.routine(f"outage-{n:04d}-{to}", case=f"O-{n % 10}", to=to))
        for n in range(PER_RECIPIENT)
        for to in (DOWN, UP)
    ]
    try:
        outage_ends[0] = time.time() + OUTAGE_SECONDS
        published = time.time()
        publish(broker_url, *bodies)
        wait_until(lambda: len(accepted) >= 2 * PER_RECIPIENT, timeout=120)
        time.sleep(0.5)
    finally:
        assert relay.stop() == 0

    by = {code: [r for r in accepted if r.authority == code] for code in (DOWN, UP)}
    refused = sum(1 for r in receiver.requests if r.authority == DOWN) - len(by[DOWN])
    waited = sorted(r.at - _stored_at(services, r.envelope["event_id"]) for r in by[UP])
    report(
        "recipient outage",
        outage_seconds=OUTAGE_SECONDS,
        refused_attempts=refused,
        other_recipient_wait_p50_s=round(waited[len(waited) // 2], 3),
        other_recipient_wait_max_s=round(waited[-1], 3),
        down_recipient_done_after_s=round(max(r.at for r in by[DOWN]) - published, 2),
    )
    for code in (DOWN, UP):
        ids = [r.envelope["event_id"] for r in by[code]]
        assert len(ids) == len(set(ids)) == PER_RECIPIENT, f"{code}: not each exactly once"
    assert first_arrivals_in_order(accepted, lambda event_id: int(event_id.split("-")[1]))
    assert min(r.at for r in by[DOWN]) >= outage_ends[0]
    assert waited[-1] < OUTAGE_SECONDS / 2, "the other recipient's transfers waited on the outage"


def _stored_at(services, event_id: str) -> float:
    """When the relay stored the transfer (signed it and put it in the outbox)."""
    received_at = services.store.transfer_view(event_id)["received_at"]
    return datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp()
