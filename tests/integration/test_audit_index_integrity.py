"""The audit's search index changed in the database behind the relay's back, as someone with
access to it could: each change that would hide a transfer's records from a search, or show
them to another authority, fails ``audit verify`` naming the audit record the index no longer
matches (never the transfer), while the chain itself is intact."""

from dataclasses import replace

import pytest
import sqlalchemy as sa

from service.audit import audit_query
from service.senders import EMBEDDED
from tests.support import examples
from tests.support.children import child, shared_under_the_isp, transfer_of
from tests.support.tokens import reader

HACKNEY, ISLINGTON, LAMBETH = "E09000012", "E09000019", "E09000022"


@pytest.fixture
def populated(services):
    """Three children sent Hackney -> Islington under the ISP; child 1 also sent ad hoc by
    Lambeth on a judgement."""
    shared_under_the_isp(services, "isp", 3)
    event = transfer_of(examples.AD_HOC_WITH_JUDGEMENT, "adhoc-1", child(1), case="CAF-LAM-1")
    assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
    return services


def _sql(services, statement: str, **params) -> None:
    engine = sa.create_engine(services.store.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def _received_seq(services, event_id: str) -> int:
    engine = sa.create_engine(services.store.url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT seq FROM audit_records WHERE event_id = :id AND action = 'received'"
                ),
                {"id": event_id},
            ).scalar_one()
    finally:
        engine.dispose()


def _seen_by(services, viewer: str) -> set[str]:
    query = replace(audit_query({"page_size": "500"}, services.child_keys), viewer=viewer)
    return {r["event_id"] for r in services.store.audit_search.search(query).records}


def _export(services, number: int) -> set[str]:
    export = services.subject_access.export({"nhs_number": child(number)["nhs_number"]}, reader())
    return {transfer["event_id"] for transfer in export["transfers"]}


def _problem(seq: int, what: str) -> str:
    return (
        f"The search index's entry for the transfer whose arrival is audit record {seq} {what}, "
        "so searches may find its records where they should not, or miss them."
    )


def test_an_untouched_index_verifies(populated):
    report = populated.audit.verify()
    assert report.intact, report.as_dict()
    assert report.as_dict()["index"] == {"errors": []}


def test_a_transfer_moved_to_another_authority_in_the_index_fails_verification(populated):
    assert "isp-2" in _seen_by(populated, ISLINGTON)
    _sql(
        populated,
        "UPDATE audit_subjects SET to_authority = :lambeth WHERE event_id = 'isp-2'",
        lambeth=LAMBETH,
    )
    assert "isp-2" not in _seen_by(populated, ISLINGTON)  # what the edit hides

    report = populated.audit.verify()
    assert report.verification.intact  # every record still matches its hash
    assert not report.intact
    seq = _received_seq(populated, "isp-2")
    assert report.as_dict()["index"]["errors"] == [_problem(seq, "differs in to_authority")]


def test_a_childs_key_taken_out_of_the_index_fails_verification(populated):
    assert _export(populated, 1) == {"isp-1", "adhoc-1"}
    _sql(populated, "DELETE FROM audit_child_keys WHERE event_id = 'adhoc-1'")
    assert _export(populated, 1) == {"isp-1"}  # what the edit hides

    report = populated.audit.verify()
    assert report.verification.intact
    seq = _received_seq(populated, "adhoc-1")
    assert report.as_dict()["index"]["errors"] == [_problem(seq, "differs in child_keys")]


def test_a_transfer_taken_out_of_the_index_or_its_basis_changed_fails_verification(populated):
    _sql(populated, "DELETE FROM audit_subjects WHERE event_id = 'isp-0'")
    _sql(populated, "UPDATE audit_subjects SET basis_kind = 'isp' WHERE event_id = 'adhoc-1'")
    report = populated.audit.verify()
    assert report.verification.intact
    errors = report.as_dict()["index"]["errors"]
    assert errors == [
        _problem(_received_seq(populated, "isp-0"), "is missing"),
        _problem(_received_seq(populated, "adhoc-1"), "differs in basis_kind"),
    ]


def test_a_transfer_or_child_key_added_to_the_index_fails_verification(populated):
    _sql(
        populated,
        "INSERT INTO audit_subjects (event_id, case_reference, from_authority, to_authority) "
        "VALUES ('made-up', 'CAF-X', :hackney, :islington)",
        hackney=HACKNEY,
        islington=ISLINGTON,
    )
    _sql(populated, "INSERT INTO audit_child_keys VALUES (:key, 'made-up-too')", key="0" * 64)
    errors = populated.audit.verify().as_dict()["index"]["errors"]
    assert errors == [
        "The search index holds 2 entries that no audit record gives: searches may find "
        "records under them that they should not."
    ]
