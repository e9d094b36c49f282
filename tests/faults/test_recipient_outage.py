"""One recipient answers 503 until the other has had all its transfers; its transfers arrive
once, in order, after failed attempts, and the other recipient's are not held up: they all
arrive while the first is still down."""

import threading
import time
from datetime import datetime

from tests.faults.conftest import first_arrivals_in_order
from tests.support import examples
from tests.support.amqp import publish, wait_until
from tests.support.processes import RelayProcess

DOWN, UP = "E09000019", "E09000007"
PER_RECIPIENT = 100
CASES = 10  # the first PER_RECIPIENT transfers to each recipient are one of each case


def test_a_recipient_that_is_down_gets_everything_later_and_delays_nobody(
    services, broker_url, receiver, report
):
    accepted, answered, up_arrived, lock = [], [], set(), threading.Lock()
    # DOWN is down until every transfer to UP has been accepted: were UP's held up behind
    # DOWN's, the outage would never end.
    outage = threading.Event()
    outage.set()

    def every_transfer_to_up_arrived_while_down_was_down() -> bool:
        return not outage.is_set()

    def answer(request):
        with lock:
            if request.authority == DOWN and outage.is_set():
                answered.append((request.authority, 503))
                return 503, {"Retry-After": "1"}, b""
            accepted.append(request)
            answered.append((request.authority, 202))
            if request.authority == UP:
                up_arrived.add(request.envelope["event_id"])
            if len(up_arrived) == PER_RECIPIENT:
                outage.clear()
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
        examples.encode(examples.routine(_event_id(n, to), case=f"O-{n % CASES}", to=to))
        for n in range(PER_RECIPIENT)
        for to in (DOWN, UP)
    ]
    to_down = [_event_id(n, DOWN) for n in range(PER_RECIPIENT)]
    try:
        published = time.time()
        publish(broker_url, *bodies)
        wait_until(every_transfer_to_up_arrived_while_down_was_down, timeout=120)
        wait_until(lambda: _delivered(services, to_down), timeout=120)
    finally:
        outage.clear()  # the relay may finish what it holds
        assert relay.stop() == 0

    by = {code: [r for r in accepted if r.authority == code] for code in (DOWN, UP)}
    refused = sum(1 for code, status in answered if status == 503)
    waited = sorted(r.at - _stored_at(services, r.envelope["event_id"]) for r in by[UP])
    report(
        "recipient outage",
        refused_attempts=refused,
        other_recipient_wait_p50_s=round(waited[len(waited) // 2], 3),
        other_recipient_wait_max_s=round(waited[-1], 3),
        down_recipient_done_after_s=round(max(r.at for r in by[DOWN]) - published, 2),
    )
    for code in (DOWN, UP):
        ids = [r.envelope["event_id"] for r in by[code]]
        assert len(ids) == len(set(ids)) == PER_RECIPIENT, f"{code}: not each exactly once"
    assert first_arrivals_in_order(accepted, lambda event_id: int(event_id.split("-")[1]))
    for n, event_id in enumerate(to_down):
        succeeded = [d["succeeded"] for d in services.store.transfers.view(event_id)["deliveries"]]
        failed = succeeded.count(False)
        assert succeeded == [False] * failed + [True], f"{event_id}: {succeeded}"
        # The first of each case was tried while DOWN was down; the rest waited behind it.
        assert failed or n >= CASES, f"{event_id} was not tried while its recipient was down"
    last_up = max(i for i, (code, _) in enumerate(answered) if code == UP)
    assert (DOWN, 503) in answered[:last_up], "DOWN was not tried while UP's transfers arrived"


def _event_id(n: int, to: str) -> str:
    return f"outage-{n:04d}-{to}"


def _delivered(services, event_ids: list[str]) -> bool:
    views = [services.store.transfers.view(event_id) for event_id in event_ids]
    return all(view is not None and view["state"] == "delivered" for view in views)


def _stored_at(services, event_id: str) -> float:
    """When the relay stored the transfer (signed it and put it in the outbox)."""
    received_at = services.store.transfers.view(event_id)["received_at"]
    return datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp()
