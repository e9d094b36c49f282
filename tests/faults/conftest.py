"""Shared set-up for the fault drills: every London authority receives over one real TLS server,
and each drill prints its figures (run with -s, or read them in CI's log)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from tests.support import examples
from tests.support.amqp import reset_topology
from tests.support.https_receiver import (
    HttpsReceiver,
    ReceivedRequest,
    event_ids,
    receive_everything_at,
)


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.broker)


@pytest.fixture
def receiver(services, broker_url, tmp_path) -> Iterator[HttpsReceiver]:
    reset_topology(broker_url)
    services.store.add_isp(examples.pan_london_isp())
    with HttpsReceiver(tmp_path / "tls") as running:
        receive_everything_at(services.store, running)
        yield running


@pytest.fixture
def report(capsys) -> Callable[..., None]:
    """Print a drill's figures past pytest's capture, so they reach the terminal and CI's log."""

    def emit(drill: str, **figures) -> None:
        with capsys.disabled():
            shown = ", ".join(f"{name}={value}" for name, value in figures.items())
            print(f"\n[faults] {drill}: {shown}")

    return emit


def duplicates(requests: list[ReceivedRequest]) -> int:
    return sum(count - 1 for count in Counter(event_ids(requests)).values())


def first_arrivals_in_order(requests: list[ReceivedRequest], number: Callable[[str], int]) -> bool:
    """Whether, per recipient and case, events first arrived in the order they were published."""
    seen: set[str] = set()
    latest: dict[tuple[str, str], int] = {}
    for request in requests:
        envelope = request.envelope
        if envelope["event_id"] in seen:
            continue
        seen.add(envelope["event_id"])
        stream = (request.authority, envelope["case_reference"])
        n = number(envelope["event_id"])
        if n < latest.get(stream, -1):
            return False
        latest[stream] = n
    return True
