"""Searching the audit by case, child, authority, basis and time, a page at a time; the child's
identifiers are findable but never stored in clear."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from service.audit import audit_query
from service.senders import EMBEDDED
from service.store.engine import make_engine
from service.store.tables import AuditChainHead
from tests.support import examples
from tests.support.children import child, shared_under_the_isp, transfer_of
from tests.support.migrations import down_and_up_again
from tests.support.tokens import reader

HACKNEY, ISLINGTON, LAMBETH = "E09000012", "E09000019", "E09000022"


@pytest.fixture
def populated(services):
    """Six children sent Hackney -> Islington under the ISP; child 2 also sent ad hoc by Lambeth."""
    shared_under_the_isp(services, "isp", 6)
    event = transfer_of(examples.AD_HOC_WITH_JUDGEMENT, "adhoc-2", child(2), case="CAF-LAM-2")
    assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
    return services


def _search(services, **params):
    return services.store.audit_search.search(audit_query(params, services.child_keys))


def _events(page) -> set[str]:
    return {r["event_id"] for r in page.records}


def test_search_by_child_finds_each_of_its_transfers_and_no_other(populated):
    by_nhs = _search(populated, nhs_number=child(2)["nhs_number"])
    assert _events(by_nhs) == {"isp-2", "adhoc-2"}
    assert [r["seq"] for r in by_nhs.records] == sorted(r["seq"] for r in by_nhs.records)
    identity = child(2)
    by_name = _search(
        populated,
        given_name=identity["given_name"].upper(),
        family_name=identity["family_name"],
        date_of_birth=identity["date_of_birth"],
    )
    assert by_name.records == by_nhs.records
    assert _events(_search(populated, unique_pupil_number=child(4)["unique_pupil_number"])) == {
        "isp-4"
    }


def test_search_by_case_authority_and_basis(populated):
    assert _events(_search(populated, case_reference="CAF-isp-3")) == {"isp-3"}
    assert _events(_search(populated, authority=LAMBETH)) == {"adhoc-2"}
    assert len(_events(_search(populated, authority=ISLINGTON, page_size="500"))) == 6
    assert _events(_search(populated, basis="judgement")) == {"adhoc-2"}
    assert _events(_search(populated, basis="isp", authority=HACKNEY, page_size="500")) == {
        f"isp-{n}" for n in range(6)
    }


def test_an_event_refused_for_reusing_a_transfers_id_is_no_part_of_that_transfers_record(
    populated,
):
    """Lambeth reuses the id of Hackney's transfer of child 1, for another child: refused as an
    id conflict, and audited, but not into Hackney's transfer, child 1's export or the audit
    Hackney's and Islington's auditors see."""
    other = transfer_of(examples.AD_HOC_WITH_JUDGEMENT, "isp-1", child(5), case="CAF-LAM-5")
    refused = populated.relay.receive(examples.encode(other), sender=EMBEDDED)
    assert refused.rejection == "id_conflict"

    def actions(records) -> list[str]:
        return [record["action"] for record in records]

    assert "rejected" not in actions(populated.store.transfers.view("isp-1")["timeline"])
    export = populated.subject_access.export({"nhs_number": child(1)["nhs_number"]}, reader())
    assert "rejected" not in actions(export["transfers"][0]["history"])
    assert "rejected" not in actions(_search(populated, nhs_number=child(1)["nhs_number"]).records)
    for viewer in (HACKNEY, ISLINGTON):
        query = replace(audit_query({"page_size": "500"}, populated.child_keys), viewer=viewer)
        assert "rejected" not in actions(populated.store.audit_search.search(query).records)
    everything = _search(populated, page_size="500").records  # the operator's whole audit
    assert [r["detail"]["rejection"] for r in everything if r["action"] == "rejected"] == [
        "id_conflict"
    ]


def test_search_by_time_range(populated):
    now = datetime.now(UTC)
    assert _search(populated, since=(now - timedelta(hours=1)).isoformat()).records
    assert not _search(populated, since=(now + timedelta(hours=1)).isoformat()).records
    assert not _search(populated, until=(now - timedelta(hours=1)).isoformat()).records
    hour_ago = (now - timedelta(hours=1)).strftime("%Y-%m-%dt%H:%M:%Sz")  # RFC 3339 allows it
    assert _search(populated, since=hour_ago).records


def test_pages_follow_on_from_each_other_without_gaps_or_repeats(populated):
    everything = _search(populated, page_size="500").records
    seen, after = [], "0"
    while True:
        page = _search(populated, page_size="4", after=after)
        assert len(page.records) <= 4
        seen += page.records
        if page.next_after is None:
            break
        after = str(page.next_after)
    assert seen == everything and len(everything) == 1 + 7 * 4


def test_nonsense_parameters_are_refused_with_a_reason(populated):
    for params, message in [
        ({"basis": "hunch"}, "basis"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size is a whole number from 1 to 500"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-24T10:00"}, "time zone"),
        ({"until": "2026-11-24t10:00"}, "time zone"),  # not taken as a date, midnight UTC
    ]:
        with pytest.raises(ValueError, match=message):
            audit_query(params, populated.child_keys)


def test_no_audit_table_holds_a_childs_identifier_in_clear(populated):
    identity = child(2)
    engine = sa.create_engine(populated.store.url)
    with engine.connect() as conn:
        dumped = repr(
            [
                conn.execute(sa.text(f"SELECT * FROM {table}")).all()
                for table in ("audit_records", "audit_subjects", "audit_child_keys")
            ]
        )
    engine.dispose()
    for value in (identity["nhs_number"], identity["unique_pupil_number"]):
        assert value not in dumped
    assert identity["family_name"] not in dumped and identity["date_of_birth"] not in dumped
    assert populated.child_keys.of_case(identity)[0] in dumped


class _Clocks:
    """The time each next audit record is appended at, as hosts whose clocks disagree, or
    transactions committing in another order than they appended, would give it."""

    def __init__(self, times):
        self._times = iter(times)

    def now(self, tz=None):
        return next(self._times)


@pytest.fixture
def out_of_time_order(services, monkeypatch):
    """Six transfers whose audit records' times run backwards along seq now and then: the
    services, and the time of the first record."""
    start = datetime(2026, 11, 24, 10, tzinfo=UTC)
    # Along seq, four records a transfer: 10:00, 10:10, then 10:05 (behind by 5 minutes), then
    # 10:03 (behind by 7), 10:20 and 10:04.
    minutes = [0, 10, 5, 3, 20, 4]
    times = [start + timedelta(minutes=m, seconds=s) for m in minutes for s in range(4)]
    monkeypatch.setattr("service.store.audit_log.datetime", _Clocks([start, *times]))
    services.store.add_isp(examples.pan_london_isp())
    for n in range(len(minutes)):
        event = examples.routine(f"clock-{n}", case=f"CAF-CLOCK-{n}")
        assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
    monkeypatch.undo()
    return services, start


def _in_pages_of_three(services, **times: str) -> list[list[dict]]:
    """Every page of a search between ``times`` (since, until), following ``next_after``."""
    pages, after = [], "0"
    while True:
        page = _search(services, page_size="3", after=after, **times)
        pages.append(page.records)
        if page.next_after is None:
            return pages
        assert page.next_after == page.records[-1]["seq"]
        after = str(page.next_after)


def _moments(start: datetime) -> list[datetime]:
    return [start + timedelta(minutes=m, seconds=s) for m in range(22) for s in (0, 2)]


def test_a_search_from_a_time_finds_every_record_from_then_though_times_run_backwards(
    out_of_time_order,
):
    services, start = out_of_time_order
    everything = _search(services, page_size="500").records
    assert [r["recorded_at"] for r in everything] != sorted(r["recorded_at"] for r in everything)
    for since in _moments(start):
        expected = [r for r in everything if datetime.fromisoformat(r["recorded_at"]) >= since]
        pages = _in_pages_of_three(services, since=since.isoformat())
        assert [r for p in pages for r in p] == expected, since
        assert all(len(p) == 3 for p in pages[:-1])


def test_a_search_up_to_a_time_finds_every_record_before_it_though_times_run_backwards(
    out_of_time_order,
):
    """The search stops at the first record from which on none can be that early: it must not
    stop short of one recorded before ``until`` that committed after later ones."""
    services, start = out_of_time_order
    everything = _search(services, page_size="500").records
    moments = _moments(start)
    for until in moments:
        expected = [r for r in everything if datetime.fromisoformat(r["recorded_at"]) < until]
        pages = _in_pages_of_three(services, until=until.isoformat())
        assert [r for p in pages for r in p] == expected, until
    for since, until in zip(moments, moments[7:], strict=False):
        expected = [
            r for r in everything if since <= datetime.fromisoformat(r["recorded_at"]) < until
        ]
        pages = _in_pages_of_three(services, since=since.isoformat(), until=until.isoformat())
        assert [r for p in pages for r in p] == expected, (since, until)


def test_upgrading_to_0010_reads_the_same_time_order_from_the_records_as_appending_kept(
    out_of_time_order,
):
    services, _ = out_of_time_order
    engine = make_engine(services.store.url)
    kept = _time_order(engine)
    # The most any record fell behind: 10:04:00, after 10:20:03.
    assert kept[1] == (16 * 60 + 3) * 1_000_000
    down_and_up_again(engine, "0009")
    assert _time_order(engine) == kept
    engine.dispose()


def _time_order(engine) -> tuple:
    head = AuditChainHead.__table__
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(head.c.latest_recorded_at, head.c.max_lag_us)).one())


def test_a_search_up_to_the_end_of_the_calendar_finds_every_record(out_of_time_order):
    """An ``until`` late in year 9999, as a caller may write for "no end": the time from which
    the search could stop lies past the calendar, so it reads on to the last record (it was a
    server error once the records' times had run backwards)."""
    services, _ = out_of_time_order
    everything = _search(services, page_size="500").records

    found = _search(services, page_size="500", until="9999-12-31T23:59:59.999999Z").records

    assert found == everything
