"""Retention rules: whose period applies, when it ends, and what purging leaves of an event."""

from datetime import UTC, datetime, timedelta

from service.domain.retention import purge_due, retention_period, settled_by, without_case
from tests.support import examples

ISP_DECISION = {"outcome": "share_under_isp", "isp": {"id": "pan-london-caf", "version": 1}}
JUDGEMENT_DECISION = {"outcome": "share_under_judgement", "judgement": {"decision": "share"}}
ISP_DAYS = {("pan-london-caf", 1): 2555}


def test_a_transfer_under_an_isp_is_kept_for_that_isp_versions_period():
    period = retention_period(ISP_DECISION, ISP_DAYS, judgement_days=90)
    assert (period.days, period.source) == (2555, "ISP pan-london-caf v1")


def test_each_isp_version_keeps_its_own_period():
    # An amendment may change the retention period: what was sent under it follows it, and what
    # was sent under the version before keeps that version's period.
    days = {**ISP_DAYS, ("pan-london-caf", 2): 365}
    amended = {"outcome": "share_under_isp", "isp": {"id": "pan-london-caf", "version": 2}}
    period = retention_period(amended, days, judgement_days=90)
    assert (period.days, period.source) == (365, "ISP pan-london-caf v2")
    assert retention_period(ISP_DECISION, days, judgement_days=90).days == 2555


def test_a_transfer_on_a_judgement_is_kept_for_the_configured_default():
    period = retention_period(JUDGEMENT_DECISION, ISP_DAYS, judgement_days=90)
    assert (period.days, period.source) == (90, "judgement default")


def test_nothing_sets_a_period_for_an_unknown_isp_so_nothing_is_purged():
    unknown = {"outcome": "share_under_isp", "isp": {"id": "gone", "version": 3}}
    assert retention_period(unknown, ISP_DAYS, judgement_days=90) is None


def test_the_period_runs_from_delivery_and_ends_on_its_last_moment():
    delivered = datetime(2026, 1, 1, 12, tzinfo=UTC)
    period = retention_period(JUDGEMENT_DECISION, ISP_DAYS, judgement_days=90)
    end = delivered + timedelta(days=90)
    assert not purge_due(delivered, period, end - timedelta(seconds=1))
    assert purge_due(delivered, period, end)


def test_a_run_reads_back_only_to_the_shortest_period_and_not_before_year_one():
    now = datetime(2026, 12, 7, 9, tzinfo=UTC)
    oldest_due = settled_by(now, 30)
    period = retention_period(JUDGEMENT_DECISION, ISP_DAYS, judgement_days=30)
    assert purge_due(oldest_due, period, now)
    assert not purge_due(oldest_due + timedelta(microseconds=1), period, now)
    assert settled_by(now, 10**9) is None


def test_purging_takes_the_case_and_keeps_who_sent_what_to_whom():
    event = examples.event(examples.ROUTINE_WITH_ISP)
    purged = without_case(event)
    assert "case" not in purged["data"] and "case" in event["data"]
    assert purged["id"] == event["id"] and purged["subject"] == event["subject"]
    assert purged["data"]["to_authority"] == event["data"]["to_authority"]
    assert "Amara" not in repr(purged) and "9434765919" not in repr(purged)
