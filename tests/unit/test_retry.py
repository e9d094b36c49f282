"""The retry schedule: exponential bounds with jitter, and the two limits that end it."""

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.retry import RetryPolicy, after_failure, outage_waits

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    max_attempts=5,
    max_age=timedelta(hours=1),
    base_delay=timedelta(seconds=10),
    max_delay=timedelta(minutes=2),
)


def _after(attempts, *, now=START, retryable=True, random=lambda: 1.0):
    return after_failure(
        POLICY, attempts=attempts, enqueued_at=START, now=now, retryable=retryable, random=random
    )


@pytest.mark.parametrize(
    ("attempts", "longest_wait"),
    [(1, 10), (2, 20), (3, 40), (4, 80)],
)
def test_the_longest_wait_doubles_with_each_failed_attempt(attempts, longest_wait):
    assert _after(attempts).retry_at == START + timedelta(seconds=longest_wait)


@pytest.mark.parametrize("attempts", [30, 45, 999], ids=str)  # 2**44 * 5 s is past any timedelta
def test_the_wait_is_capped_at_the_longest_delay(attempts):
    policy = RetryPolicy(max_attempts=1000, base_delay=timedelta(seconds=10))
    decided = after_failure(
        policy, attempts=attempts, enqueued_at=START, now=START, retryable=True, random=lambda: 1.0
    )
    assert decided.retry_at == START + policy.max_delay


def test_jitter_spreads_the_wait_between_now_and_the_bound():
    assert _after(3, random=lambda: 0.25).retry_at == START + timedelta(seconds=10)
    assert _after(3, random=lambda: 0.0).retry_at == START


def test_after_the_most_attempts_it_gives_up():
    decided = _after(5)
    assert decided.retry_at is None
    assert decided.gave_up == "5 attempts made, the most allowed"


def test_a_retry_that_would_fall_after_the_maximum_age_is_not_scheduled():
    decided = _after(2, now=START + timedelta(minutes=59, seconds=50))
    assert decided.retry_at is None
    assert "older than the 1:00:00" in decided.gave_up


def test_a_failure_a_retry_cannot_fix_is_not_retried():
    assert _after(1, retryable=False).gave_up == "the failure is not one a retry can fix"


def test_an_outage_is_waited_out_half_a_second_at_first_then_doubling_to_half_a_minute():
    waits = outage_waits()
    assert [next(waits) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
