"""When to try a failed delivery again, and when to stop and call it failed.

Backoff is exponential with full jitter (a random delay between zero and the exponential
bound), so that after a borough's endpoint comes back the relay's retries arrive spread out
rather than all at once. A delivery stops being retried after ``max_attempts`` or once it is
``max_age`` old, whichever comes first; it is then failed, visible and redeliverable by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

# Waiting out what the relay needs and cannot reach (the database, the broker, room in
# caf.dead): the first wait, doubled each time up to the longest.
FIRST_OUTAGE_WAIT_SECONDS = 0.5
LONGEST_OUTAGE_WAIT_SECONDS = 30.0


def outage_waits() -> Iterator[float]:
    """The waits between tries while something the relay needs is away, without end: short
    at first, as most outages are a restart, then no more often than every half minute. Not
    jittered: one process waits for its own connection, not for a recipient many retry."""
    wait = FIRST_OUTAGE_WAIT_SECONDS
    while True:
        yield wait
        wait = min(wait * 2, LONGEST_OUTAGE_WAIT_SECONDS)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    max_age: timedelta = timedelta(days=2)
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class AfterFailure:
    """Either ``retry_at`` is set, or ``gave_up`` says why no retry will follow."""

    retry_at: datetime | None = None
    gave_up: str | None = None


def after_failure(
    policy: RetryPolicy,
    *,
    attempts: int,
    enqueued_at: datetime,
    now: datetime,
    retryable: bool,
    random: Callable[[], float],
) -> AfterFailure:
    """Decide what follows the ``attempts``-th failed attempt; ``random`` returns [0, 1)."""
    if not retryable:
        return AfterFailure(gave_up="the failure is not one a retry can fix")
    if attempts >= policy.max_attempts:
        return AfterFailure(gave_up=f"{attempts} attempts made, the most allowed")
    # In seconds, as a float: the doubling goes on past max_delay (50 attempts double 5 s beyond
    # any timedelta), and only its minimum with max_delay counts.
    doubled = policy.base_delay.total_seconds() * 2.0 ** min(attempts - 1, 1000)
    bound = timedelta(seconds=min(policy.max_delay.total_seconds(), doubled))
    retry_at = now + bound * random()
    if retry_at - enqueued_at > policy.max_age:
        return AfterFailure(gave_up=f"older than the {policy.max_age} allowed for retries")
    return AfterFailure(retry_at=retry_at)
