"""Prometheus metrics read from the store (and the broker) at scrape time.

Why at scrape time, and not counters kept in each process: events are taken in by several
worker processes and delivered by whichever claims them, so a counter in one process sees only
its share, starts again at zero when that process restarts, and would need a metrics port per
process for Prometheus to add them up. Everything measured here is already written to the
database in the transaction that does it (transfers and their decisions, each delivery attempt
with its time and duration, each rejection in the audit), so any web process can answer for
the whole deployment, the numbers survive restarts and two scrapes of two processes agree.
The cost is a few aggregate queries per scrape, growing with the rows kept; scrape every
30 seconds or more. Delivery latency is a histogram built the same way, from each envelope's
signing (when it entered the outbox) to the end of the attempt that delivered it.

Whose figures: a global scrape (the operator's Prometheus, with a global monitor token, or a
global admin) gets the whole deployment's; an auditor's or an authority's monitor's, its own
authority's, as everywhere else in the API: the transfers it sent, and those to it once sent
(``seen_by``); and of failed deliveries, every attempt on a transfer it sent or that was sent to
it, even one parked again since, as a counter must never fall. Another borough's volumes,
outcomes and failing recipients are that borough's business. The figures no one authority owns,
the deployment's rejected input and the broker, are the operator's alone, so an authority's
scrape leaves them out.

Metrics:
- ``caf_relay_transfers{state}``: transfers by outcome (awaiting_judgement, withheld, signed,
  delivered, failed); ``caf_relay_transfers_by_basis{basis}``: by isp, judgement or none;
- ``caf_relay_events_rejected_total{rejection}``: inbound events refused, by reason, each reason
  from 0 (``REJECTIONS``);
- ``caf_relay_delivery_latency_seconds``: histogram of the times from signing (entering the
  outbox) to delivered; a redelivered transfer counts from its first signing;
- ``caf_relay_delivery_failures_total{adapter_type,authority}``: failed delivery attempts
  (``adapter_type`` "none" when the recipient had no usable adapter);
- ``caf_relay_outbox_pending`` and ``caf_relay_outbox_oldest_seconds``: the delivery queue and
  how long its oldest envelope has waited (queue lag);
- with a broker configured, ``caf_relay_broker_up``, ``caf_relay_broker_queue_messages{queue}``
  (messages ready in caf.transfers, i.e. not yet taken in, and in caf.dead) and
  ``caf_relay_broker_queue_consumers{queue}`` (on caf.transfers, the workers taking events in),
  from the app's ``BrokerProbe`` (``service.broker_probe``): on the one connection the process
  keeps, at most a few seconds old, and waited for a few seconds at most, so that a broker down
  or silent is ``caf_relay_broker_up 0``, not a failed or hung scrape.

Alert on ``caf_relay_transfers{state="failed"} > 0`` (someone must redeliver), on a growing
``caf_relay_outbox_oldest_seconds`` (a recipient has been unreachable for that long), on a
growing ``caf_relay_broker_queue_messages{queue="caf.transfers"}`` (intake is falling behind),
on ``caf_relay_broker_queue_consumers{queue="caf.transfers"} == 0`` (no worker is running: the
web app's ``/readyz`` does not say so, as it is that process's readiness) and on
``caf_relay_broker_up == 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from contracts.api.transfers import TRANSFER_STATES
from service.audit import BASIS_KINDS
from service.broker_probe import BrokerProbe
from service.relay import PROCESSING_FAILED, Rejection
from service.store.store import Store

REJECTIONS = (*(rejection.value for rejection in Rejection), PROCESSING_FAILED)
# Seconds; from a delivery made at once to one that waited out a recipient's day-long outage.
LATENCY_BOUNDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class StoreCollector(Collector):
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        broker: BrokerProbe | None = None,
        viewer: str | None = None,
    ) -> None:
        """``viewer``: the authority whose figures to give; None for the whole deployment's."""
        self._store = store
        self._clock = clock
        self._broker = broker
        self._viewer = viewer

    def collect(self) -> Iterator[Metric]:
        yield from self._transfers()
        if self._viewer is None:
            yield self._rejections()
        yield self._latency()
        failures = CounterMetricFamily(
            "caf_relay_delivery_failures",
            "Failed delivery attempts, by adapter type and receiving authority.",
            labels=["adapter_type", "authority"],
        )
        for row in self._store.operations.delivery_failures(self._viewer):
            failures.add_metric([row.adapter_type or "none", row.authority], row.failures)
        yield failures
        yield from self._outbox()
        if self._broker and self._viewer is None:
            yield from self._broker_queues(self._broker)

    def _transfers(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("caf_relay_transfers", "Transfers by state.", labels=["state"])
        counts = self._store.transfers.counts_by_state(self._viewer)
        for state in TRANSFER_STATES:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state
        by_basis = GaugeMetricFamily(
            "caf_relay_transfers_by_basis",
            "Transfers by what their decision rests on: an ISP, a judgement, or none yet.",
            labels=["basis"],
        )
        counts = self._store.operations.transfers_by_basis(self._viewer)
        for kind in BASIS_KINDS:
            by_basis.add_metric([kind], counts.get(kind, 0))
        yield by_basis

    def _rejections(self) -> CounterMetricFamily:
        rejected = CounterMetricFamily(
            "caf_relay_events_rejected", "Inbound events refused, by reason.", labels=["rejection"]
        )
        # Each reason from 0, so that the first of one is an increase: a series that first
        # appears at 1 is no increase to rate() and increase(), and an alert on them misses it.
        counts = dict.fromkeys(REJECTIONS, 0) | self._store.operations.rejections()
        for rejection, count in sorted(counts.items()):
            rejected.add_metric([rejection], count)
        return rejected

    def _latency(self) -> HistogramMetricFamily:
        latencies = self._store.operations.delivery_latencies(LATENCY_BOUNDS, self._viewer)
        return HistogramMetricFamily(
            "caf_relay_delivery_latency_seconds",
            "From signing (entering the outbox) to delivered; a redelivery from the first signing.",
            buckets=[
                *(
                    (str(float(b)), n)
                    for b, n in zip(LATENCY_BOUNDS, latencies.within, strict=True)
                ),
                ("+Inf", latencies.count),
            ],
            sum_value=latencies.total_seconds,
        )

    def _outbox(self) -> Iterator[Metric]:
        pending, oldest = self._store.outbox.summary(self._viewer)
        yield GaugeMetricFamily(
            "caf_relay_outbox_pending", "Signed envelopes waiting for delivery.", value=pending
        )
        age = (self._clock() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "caf_relay_outbox_oldest_seconds",
            "How long the oldest envelope has waited for delivery.",
            value=max(age, 0.0),
        )

    @staticmethod
    def _broker_queues(probe: BrokerProbe) -> Iterator[Metric]:
        # None when the broker did not answer: a metric, not a failed scrape.
        queues = probe.reading().queues
        yield GaugeMetricFamily(
            "caf_relay_broker_up",
            "Whether the broker answered its last reading (1) or not (0).",
            value=0 if queues is None else 1,
        )
        depth = GaugeMetricFamily(
            "caf_relay_broker_queue_messages", "Messages ready in a queue.", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "caf_relay_broker_queue_consumers",
            "Consumers of a queue; on caf.transfers, the workers taking events in.",
            labels=["queue"],
        )
        for queue, state in (queues or {}).items():
            if state is not None:
                depth.add_metric([queue], state.messages)
                consumers.add_metric([queue], state.consumers)
        yield depth
        yield consumers


def registry_for(
    store: Store,
    clock: Callable[[], datetime],
    broker: BrokerProbe | None = None,
    viewer: str | None = None,
) -> CollectorRegistry:
    """The metrics of the whole deployment, or (``viewer``) of one authority's transfers."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, clock, broker, viewer))
    return registry
