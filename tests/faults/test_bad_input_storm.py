"""A poison message and 1,000 generated malformed messages, interleaved with valid traffic.

The worker runs in this process (on the real broker and database) so that the poison message
can be one the relay itself fails on: a wrapper makes processing raise for it, as a bug would.
"""

import random
import time

from service.worker import DEAD_QUEUE, REASON_HEADER, REJECTION_HEADER
from tests.support import examples, malformed
from tests.support.amqp import publish, running_worker, take, wait_until
from tests.support.crashing import CrashesOn
from tests.support.https_receiver import event_ids

MALFORMED = 1000
VALID_EVERY = 10


def test_bad_input_is_all_dead_lettered_and_valid_traffic_still_arrives(
    services, broker_url, receiver, report
):
    seed = random.randrange(1 << 30)
    generated = malformed.messages(MALFORMED, seed)
    bad = [body for body, _ in generated]
    poison = examples.encode(examples.routine("poison"))
    rightly: dict[bytes, set[str]] = {poison: {"processing_failed"}}
    for body, rejections in generated:  # by body: two mutations may make the same message
        rightly.setdefault(body, set()).update(rejections)
    valid = [examples.routine(f"storm-valid-{n:03d}", case=f"V-{n}") for n in range(100)]
    stream = [poison]
    for n, body in enumerate(bad):
        stream.append(body)
        if n % VALID_EVERY == 0:
            stream.append(examples.encode(valid[n // VALID_EVERY]))

    started = time.monotonic()
    with running_worker(
        broker_url, services, relay=CrashesOn(services.relay, b'"poison"')
    ) as worker:
        publish(broker_url, *stream)
        dead = take(broker_url, DEAD_QUEUE, MALFORMED + 1, timeout=180)
        wait_until(lambda: len(set(event_ids(receiver.requests))) >= len(valid), timeout=120)
        assert worker.ready.is_set(), "the worker stopped consuming"
    elapsed = time.monotonic() - started

    rejections: dict[str, int] = {}
    for properties, body in dead:
        kind = properties.headers[REJECTION_HEADER]
        rejections[kind] = rejections.get(kind, 0) + 1
        assert properties.headers[REASON_HEADER], f"no reason given (seed {seed})"
        assert kind in rightly[body], f"{body[:80]!r} refused as {kind} (seed {seed})"
    report(
        "bad input storm",
        seed=seed,
        dead_lettered=len(dead),
        seconds=round(elapsed, 1),
        **rejections,
    )
    assert sorted(body for _, body in dead) == sorted([*bad, poison]), f"seed {seed}"
    assert rejections["processing_failed"] == 1
    assert sorted(event_ids(receiver.requests)) == sorted(v["id"] for v in valid)
