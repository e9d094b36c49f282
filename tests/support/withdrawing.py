"""What the tests of withdrawn envelopes (an ISP suspended, retired or expired before they were
sent) share: sending a routine transfer under the pan-London ISP, claiming and delivering it on
a clock of the test's choosing, and reading its ``basis_withdrawn`` records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from service.delivery import Deliverer
from service.domain.retry import RetryPolicy
from service.senders import EMBEDDED
from service.store.outbox import Lease
from tests.support import examples
from tests.support.store_reads import audit_actions


def deliverer(services, clock: Callable[[], datetime] | None = None) -> Deliverer:
    """Retries wait a second (full jitter at its top), so one pass makes one attempt; on the
    services' clock unless given another."""
    return Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=1)),
        lease=timedelta(minutes=2),
        clock=clock or services.clock,
        jitter=lambda: 1.0,
    )


def send(services, event_id: str, lease: Lease | None = None):
    """A routine transfer of its own case under the pan-London ISP, signed."""
    body = examples.encode(examples.routine(event_id, case=event_id))
    (outcome,) = services.relay.receive_many([(body, EMBEDDED)], lease=lease)
    assert outcome.state == "signed"
    return outcome


def claim(services, lease: timedelta):
    """What a delivery loop's claim takes of the outbox now, under ``lease``."""
    return services.store.outbox.claim(
        worker="test",
        now=services.clock(),
        lease=lease,
        limit=1,
        per_recipient=1,
        in_flight={},
    )


def withdrawn(services, event_id: str) -> list[dict]:
    """The details of a transfer's ``basis_withdrawn`` records, oldest first."""
    return [d for _, a, d in audit_actions(services.store, event_id) if a == "basis_withdrawn"]
