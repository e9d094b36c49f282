"""``/metrics`` after real transfers: outcomes, bases, rejections, latency, adapter failures;
the whole deployment's to a global admin, an authority's own to its auditor."""

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.delivery import Deliverer
from service.domain.retry import RetryPolicy
from service.senders import EMBEDDED
from service.web import create_app
from tests.support import examples
from tests.support.https_receiver import https_recipients
from tests.support.tokens import bearer

ISLINGTON, CAMDEN, HAVERING = "E09000019", "E09000007", "E09000025"
HACKNEY, TOWER_HAMLETS = "E09000012", "E09000030"
WAIT = 42  # seconds the deliverer's clock runs ahead of intake's: every delivery takes this long


@pytest.fixture
def receiver(services, tmp_path):
    with https_recipients(services, tmp_path, ISLINGTON, CAMDEN) as running:
        yield running


def _deliver_due(services) -> None:
    """Deliver what is due, two attempts each at most, as if ``WAIT`` seconds after intake."""
    Deliverer(
        services.store,
        services.adapters,
        retry=RetryPolicy(max_attempts=2, base_delay=timedelta(seconds=1)),
        lease=timedelta(minutes=1),
        clock=lambda: services.clock() + timedelta(seconds=WAIT),
        jitter=lambda: 0.0,
    ).deliver_due("test")


def _receive(services, event) -> str:
    return services.relay.receive(examples.encode(event), sender=EMBEDDED).state


def _scrape(services, role="admin", authority=None) -> dict[tuple, float]:
    text = (
        create_app(services)
        .test_client()
        .get("/metrics", headers=bearer(services, role, authority))
        .get_data(as_text=True)
    )
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _receive_the_mix(services, receiver) -> None:
    """From Hackney: two delivered to Islington, one failed to Camden (503 twice), one to
    Havering (no adapter); from Havering, one parked for Tower Hamlets; two refused."""
    for n in range(2):
        assert _receive(services, examples.routine(f"to-islington-{n}", case=f"C-{n}")) == "signed"
    _deliver_due(services)
    receiver.respond_with(503, 503)
    assert _receive(services, examples.routine("to-camden", to=CAMDEN)) == "signed"
    assert _receive(services, examples.routine("to-havering", to=HAVERING)) == "signed"
    parked = examples.event(examples.ROUTINE_WITHOUT_BASIS, id="parked")
    assert _receive(services, parked) == "awaiting_judgement"
    no_data = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="no-data", data={}))
    assert services.relay.receive(no_data, sender=EMBEDDED).rejection == "contract_violation"
    assert services.relay.receive(b"not json", sender=EMBEDDED).rejection == "not_json"
    _deliver_due(services)


def test_metrics_count_outcomes_bases_rejections_latency_and_adapter_failures(services, receiver):
    _receive_the_mix(services, receiver)

    metrics = _scrape(services)

    def value(name, **labels):
        return metrics[(name, *sorted(labels.items()))]

    assert value("caf_relay_transfers", state="delivered") == 2
    assert value("caf_relay_transfers", state="failed") == 2
    assert value("caf_relay_transfers", state="awaiting_judgement") == 1
    assert value("caf_relay_transfers_by_basis", basis="isp") == 4
    assert value("caf_relay_transfers_by_basis", basis="none") == 1
    assert value("caf_relay_transfers_by_basis", basis="judgement") == 0
    assert value("caf_relay_events_rejected_total", rejection="not_json") == 1
    assert value("caf_relay_events_rejected_total", rejection="contract_violation") == 1
    # Camden answered 503 twice; Havering has no adapter at all.
    assert value("caf_relay_delivery_failures_total", adapter_type="https", authority=CAMDEN) == 2
    assert value("caf_relay_delivery_failures_total", adapter_type="none", authority=HAVERING) == 2
    failing = {k for k in metrics if k[0] == "caf_relay_delivery_failures_total"}
    assert ISLINGTON not in str(failing)
    # Both deliveries to Islington took WAIT seconds (plus the request) from enqueue.
    assert value("caf_relay_delivery_latency_seconds_count") == 2
    assert value("caf_relay_delivery_latency_seconds_bucket", le="30.0") == 0
    assert value("caf_relay_delivery_latency_seconds_bucket", le="60.0") == 2
    assert value("caf_relay_delivery_latency_seconds_bucket", le="+Inf") == 2
    assert 2 * WAIT <= value("caf_relay_delivery_latency_seconds_sum") < 2 * (WAIT + 10)
    assert value("caf_relay_outbox_pending") == 0
    assert not any(k[0].startswith("caf_relay_broker") for k in metrics)  # no broker configured


def test_an_envelope_sent_twice_after_its_claim_ran_out_is_one_delivery_latency(services, receiver):
    assert _receive(services, examples.routine("twice", case="C-twice")) == "signed"
    now, lease = services.clock(), timedelta(minutes=2)

    def claim(worker, at):
        return services.store.outbox.claim(
            worker=worker, now=at, lease=lease, limit=1, per_recipient=1, in_flight={}
        )

    stalled = claim("worker-a", now)
    again = claim("worker-b", now + lease + timedelta(seconds=1))  # worker-a's claim ran out
    assert services.deliverer.deliver_group(again).results == ["delivered"]
    assert services.deliverer.deliver_group(stalled).results == ["delivered"]  # late, as allowed
    assert len(receiver.requests) == 2

    metrics = _scrape(services)
    assert metrics[("caf_relay_transfers", ("state", "delivered"))] == 1
    assert metrics[("caf_relay_delivery_latency_seconds_count",)] == 1


def test_metrics_need_an_auditor_a_monitor_or_a_global_admin(services):
    client = create_app(services).test_client()
    assert client.get("/metrics").status_code == 401
    practitioner = bearer(services, "practitioner", ISLINGTON)
    assert client.get("/metrics", headers=practitioner).status_code == 403
    assert client.get("/metrics", headers=bearer(services, "admin")).status_code == 200


def test_a_global_monitor_scrapes_the_whole_deployment_and_an_authoritys_monitor_its_own(
    services, receiver
):
    """The operator's Prometheus needs no admin token, which could change every borough."""
    _receive_the_mix(services, receiver)

    assert _scrape(services, "monitor") == _scrape(services, "admin")
    assert _scrape(services, "monitor", HACKNEY) == _scrape(services, "auditor", HACKNEY)
    assert _scrape(services, "monitor", HACKNEY) != _scrape(services, "monitor")


def test_an_auditor_sees_the_figures_of_its_own_authoritys_transfers_only(services, receiver):
    """As in its listings: what its authority sent, and what was sent to it; not another
    authority's transfers, nor the deployment's rejections and broker."""
    _receive_the_mix(services, receiver)

    def seen_by(authority):
        metrics = _scrape(services, "auditor", authority)
        states = {k[1][1]: v for k, v in metrics.items() if k[0] == "caf_relay_transfers"}
        failures = {
            k[1:]: v for k, v in metrics.items() if k[0] == "caf_relay_delivery_failures_total"
        }
        return metrics, {s: n for s, n in states.items() if n}, failures

    metrics, states, failures = seen_by(ISLINGTON)
    assert states == {"delivered": 2}
    assert failures == {}
    assert metrics[("caf_relay_transfers_by_basis", ("basis", "isp"))] == 2
    assert metrics[("caf_relay_delivery_latency_seconds_count",)] == 2
    assert not any(k[0].startswith("caf_relay_events_rejected") for k in metrics)

    metrics, states, failures = seen_by(HACKNEY)
    assert states == {"delivered": 2, "failed": 2}
    assert failures == {
        (("adapter_type", "https"), ("authority", CAMDEN)): 2,
        (("adapter_type", "none"), ("authority", HAVERING)): 2,
    }

    _, states, failures = seen_by(HAVERING)
    assert states == {"awaiting_judgement": 1, "failed": 1}  # its parked one, and one to it
    assert failures == {(("adapter_type", "none"), ("authority", HAVERING)): 2}

    metrics, states, failures = seen_by(TOWER_HAMLETS)  # its one is parked: never sent to it
    assert states == {} and failures == {}
    assert metrics[("caf_relay_transfers_by_basis", ("basis", "none"))] == 0


def test_an_auditor_sees_only_its_own_authoritys_envelopes_waiting(services):
    services.store.add_isp(examples.pan_london_isp())
    assert _receive(services, examples.routine("waiting-camden", to=CAMDEN)) == "signed"
    assert _scrape(services)[("caf_relay_outbox_pending",)] == 1
    islington = _scrape(services, "auditor", ISLINGTON)
    assert islington[("caf_relay_outbox_pending",)] == 0
    assert islington[("caf_relay_outbox_oldest_seconds",)] == 0
    assert _scrape(services, "auditor", CAMDEN)[("caf_relay_outbox_pending",)] == 1


def test_an_authoritys_failed_deliveries_stay_counted_when_its_transfer_is_parked_again(
    services, receiver
):
    """A counter that falls is, to Prometheus, a restart, and what it counts next is all counted
    again as new: the attempts that failed to reach Islington stay in its figures after the
    ISP's suspension parks the transfer, which Islington no longer sees."""
    receiver.respond_with(503, 503)
    assert _receive(services, examples.routine("to-islington", case="C-1")) == "signed"
    _deliver_due(services)
    failed = (
        "caf_relay_delivery_failures_total",
        ("adapter_type", "https"),
        ("authority", ISLINGTON),
    )
    assert _scrape(services, "auditor", ISLINGTON)[failed] == 2

    suspended = (
        create_app(services)
        .test_client()
        .post(
            "/api/v1/isps/pan-london-caf/suspend",
            json={"reason": "Breach under investigation."},
            headers=bearer(services, "admin", HACKNEY),
        )
    )
    assert suspended.status_code == 201
    assert services.store.transfers.view("to-islington")["state"] == "awaiting_judgement"

    assert _scrape(services, "auditor", ISLINGTON)[failed] == 2
    assert _scrape(services, "auditor", HACKNEY)[failed] == 2


def test_every_reason_for_refusing_an_event_is_counted_from_zero(services):
    """So that the first event refused for a reason is an increase to Prometheus, and an alert
    on ``increase(caf_relay_events_rejected_total[5m]) > 0`` fires for it; a series that first
    appears at 1 is no increase."""
    rejected = {
        dict(k[1:])["rejection"]: v
        for k, v in _scrape(services).items()
        if k[0] == "caf_relay_events_rejected_total"
    }
    assert rejected == {
        "oversized": 0,
        "not_json": 0,
        "contract_violation": 0,
        "unknown_authority": 0,
        "forged_sender": 0,
        "id_conflict": 0,
        "processing_failed": 0,
    }

    services.relay.receive(b"not json", sender=EMBEDDED)
    assert _scrape(services)[("caf_relay_events_rejected_total", ("rejection", "not_json"))] == 1
