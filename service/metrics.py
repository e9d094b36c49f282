"""Prometheus metrics read from the store at scrape time, so every process tells the same truth.

Counts of transfers by state and the outbox's depth and oldest item come from the database, not
from counters in one process, so they are right however many workers run and across restarts.
Alert on ``caf_relay_transfers{state="failed"} > 0`` (someone must redeliver) and on a growing
``caf_relay_outbox_oldest_seconds`` (a recipient has been unreachable for that long).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from service.store.store import Store

STATES = ("awaiting_judgement", "withheld", "signed", "delivered", "failed")


class StoreCollector(Collector):
    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily("caf_relay_transfers", "Transfers by state.", labels=["state"])
        counts = self._store.transfer_counts()
        for state in STATES:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state
        pending, oldest = self._store.outbox.summary()
        yield GaugeMetricFamily(
            "caf_relay_outbox_pending", "Signed envelopes waiting for delivery.", value=pending
        )
        age = (self._clock() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "caf_relay_outbox_oldest_seconds",
            "How long the oldest envelope has waited for delivery.",
            value=max(age, 0.0),
        )


def registry_for(store: Store, clock: Callable[[], datetime]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, clock))
    return registry
