"""Retention runs: payloads of delivered transfers go once their period is over, the metadata
stays, each purge is audited and the chain still verifies."""

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from service.retention import Retention
from service.senders import EMBEDDED
from service.store.tables import Envelope, Transfer
from tests.support import examples
from tests.support.store_reads import audit_actions
from tests.support.tokens import reader

ISLINGTON, SOUTHWARK = "E09000019", "E09000028"
JUDGEMENT_DAYS = 30
ISP_DAYS = 2555  # the example ISP's retention period
ROUTINE = examples.event(examples.ROUTINE_WITH_ISP)["id"]
AD_HOC = examples.event(examples.AD_HOC_WITH_JUDGEMENT)["id"]
PARKED = examples.event(examples.ROUTINE_WITHOUT_BASIS)["id"]


@pytest.fixture
def delivered(services, tmp_path):
    """One transfer delivered under the ISP, one on a judgement, and one parked."""
    return _delivered_under(examples.pan_london_isp(), services, tmp_path)


def _delivered_under(isp, services, tmp_path):
    services.store.add_isp(isp)
    for code in (ISLINGTON, SOUTHWARK):
        services.store.organisations.set_adapter(
            code, "directory", {"path": str(tmp_path / code)}, {}
        )
    for name in (examples.ROUTINE_WITH_ISP, examples.AD_HOC_WITH_JUDGEMENT):
        services.relay.receive(examples.encode(examples.event(name)), sender=EMBEDDED)
    services.relay.receive(
        examples.encode(examples.event(examples.ROUTINE_WITHOUT_BASIS)), sender=EMBEDDED
    )
    assert services.deliverer.deliver_due("test") == 2
    return services


def _run(services, days_later: int) -> list[str]:
    delivered_at = max(
        services.store.transfers.view(e)["deliveries"][-1]["attempted_at"]
        for e in (ROUTINE, AD_HOC)
    )
    moment = datetime.fromisoformat(delivered_at) + timedelta(days=days_later)
    retention = Retention(
        services.store.payloads,
        services.store.dead_letters,
        judgement_days=JUDGEMENT_DAYS,
        dead_letter_days=JUDGEMENT_DAYS,
        clock=lambda: moment,
    )
    return [purged.event_id for purged in retention.run().payloads]


def _payload(services, event_id: str) -> tuple[dict, str | None]:
    """The stored event and envelope JWS, read straight from the tables."""
    engine = sa.create_engine(services.store.url)
    with engine.connect() as conn:
        event = conn.scalar(sa.select(Transfer.event).where(Transfer.event_id == event_id))
        jws = conn.scalar(sa.select(Envelope.jws).where(Envelope.event_id == event_id))
    engine.dispose()
    return event, jws


def test_nothing_is_purged_before_its_period_ends(delivered):
    assert _run(delivered, JUDGEMENT_DAYS - 1) == []
    event, jws = _payload(delivered, AD_HOC)
    assert "case" in event["data"] and jws


def test_a_judgement_based_payload_goes_after_the_default_and_an_isp_one_after_the_isps(delivered):
    assert _run(delivered, JUDGEMENT_DAYS) == [AD_HOC]
    assert _run(delivered, ISP_DAYS - 1) == []
    assert _run(delivered, ISP_DAYS) == [ROUTINE]
    assert _run(delivered, ISP_DAYS * 2) == []  # each payload is purged once
    for event_id in (ROUTINE, AD_HOC):
        event, jws = _payload(delivered, event_id)
        assert "case" not in event["data"] and jws is None
        assert "Amara" not in repr(event) and "9434765919" not in repr(event)
    parked, _ = _payload(delivered, PARKED)
    assert "case" in parked["data"]  # not delivered: still waiting for a judgement


def test_an_isp_keeping_payloads_for_millennia_stops_no_run(services, tmp_path):
    isp = examples.pan_london_isp()
    _delivered_under({**isp, "retention": {"period_days": 3_000_000}}, services, tmp_path)
    assert _run(services, JUDGEMENT_DAYS) == [AD_HOC]
    assert _run(services, ISP_DAYS) == []


def test_a_run_reads_only_the_payloads_whose_period_could_be_over(delivered):
    settled = sorted(
        datetime.fromisoformat(delivered.store.transfers.view(e)["deliveries"][-1]["attempted_at"])
        for e in (ROUTINE, AD_HOC)
    )
    payloads = delivered.store.payloads

    assert payloads.held_for_settled(settled[0] - timedelta(microseconds=1)) == []
    assert len(payloads.held_for_settled(settled[0])) == 1
    assert {held.event_id for held in payloads.held_for_settled(settled[1])} == {ROUTINE, AD_HOC}


def test_the_metadata_stays_each_purge_is_audited_and_the_chain_verifies(delivered):
    _run(delivered, ISP_DAYS)
    view = delivered.store.transfers.view(AD_HOC)
    assert view["state"] == "delivered"
    assert view["decision"]["judgement"]["practitioner"]["name"] == "Jo Reid"
    assert view["envelope"]["sha256"] and view["deliveries"][-1]["succeeded"]
    [purge] = [d for _, a, d in audit_actions(delivered.store, AD_HOC) if a == "payload_purged"]
    assert purge["retention_days"] == JUDGEMENT_DAYS
    assert purge["period_set_by"] == "judgement default"
    [purge] = [d for _, a, d in audit_actions(delivered.store, ROUTINE) if a == "payload_purged"]
    assert purge["period_set_by"] == "ISP pan-london-caf v1"

    report = delivered.audit.verify()
    assert report.intact
    export = delivered.subject_access.export({"nhs_number": "9434765919"}, reader())
    purged = {t["event_id"]: t["payload_purged_at"] for t in export["transfers"]}
    assert purged[ROUTINE] and purged[AD_HOC] and purged[PARKED] is None


def test_a_withheld_transfer_holds_no_payload_for_retention_to_purge(delivered):
    """Nothing will ever be sent from a transfer withheld on a judgement, so it keeps no case
    data from the judgement on (``test_what_is_kept``): retention leaves it alone, why intact."""
    withheld = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    assert delivered.relay.receive(examples.encode(withheld), sender=EMBEDDED).state == "withheld"
    assert withheld["id"] not in _run(delivered, ISP_DAYS + 1)

    event, jws = _payload(delivered, withheld["id"])
    assert event["data"]["case"] == {} and jws is None
    view = delivered.store.transfers.view(withheld["id"])
    assert view["state"] == "withheld"
    assert view["decision"]["judgement"]["decision"] == "not_share"
    assert "payload_purged" not in [a for _, a, _ in audit_actions(delivered.store, withheld["id"])]


def test_a_transfer_withheld_whole_by_an_earlier_release_goes_after_the_judgement_default(
    delivered,
):
    """Before migration 0006 a withheld transfer kept its case; retention still purges it."""
    withheld = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    delivered.relay.receive(examples.encode(withheld), sender=EMBEDDED)
    engine = sa.create_engine(delivered.store.url)
    with engine.begin() as connection:  # as an earlier release stored it
        connection.execute(
            sa.update(Transfer)
            .where(Transfer.event_id == withheld["id"])
            .values(event=withheld, payload_purged_at=None)
        )
    engine.dispose()
    assert withheld["id"] not in _run(delivered, JUDGEMENT_DAYS - 1)
    assert withheld["id"] in _run(delivered, JUDGEMENT_DAYS + 1)

    event, _ = _payload(delivered, withheld["id"])
    assert "case" not in event["data"]
    [purge] = [
        d for _, a, d in audit_actions(delivered.store, withheld["id"]) if a == "payload_purged"
    ]
    assert purge["period_set_by"] == "judgement default" and "withheld_at" in purge
    assert delivered.audit.verify().intact
