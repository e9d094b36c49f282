"""A practitioner's judgement as stored is vouched for by the audit chain: rewriting why they
decided, in either place the transfer keeps it, fails verification; judgements recorded before
the audit held their digests are counted as not checked, never reported as altered."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service.access import Principal, Role
from service.domain.audit_chain import GENESIS, record_hash
from service.senders import EMBEDDED
from service.store.tables import AuditChainHead, AuditRecord
from tests.support import examples, judgements
from tests.support.store_reads import audit_actions
from tests.support.tampering import necessity_rewritten, rewrite_transfer

NEWHAM = "E09000025"
PRACTITIONER = Principal("Ada Newham", Role.PRACTITIONER, NEWHAM, "tok-newham")


@pytest.fixture
def database(services):
    engine = sa.create_engine(services.store.url)
    yield engine
    engine.dispose()


def _judged_later(services, event_id: str = "parked-1") -> str:
    """A parked transfer, then a practitioner's judgement not to share it."""
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS, id=event_id)
    services.relay.receive(examples.encode(event), sender=EMBEDDED)
    services.judgements.record(event["id"], judgements.not_share(), by=PRACTITIONER)
    return event["id"]


def _judged_at_intake(services) -> str:
    """A transfer that came with its judgement not to share."""
    event = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    services.relay.receive(examples.encode(event), sender=EMBEDDED)
    return event["id"]


def _in_event(row) -> dict:
    event = row.event
    event["data"]["sharing"]["judgement"]["reasons"]["necessity"] = "Rewritten."
    return {"event": event}


def _basis_decided_seq(services, event_id: str) -> int:
    """The seq of the transfer's last basis decision, the record holding its judgement's digest."""
    return [seq for seq, action in _records(services, event_id) if action == "basis_decided"][-1]


def _records(services, event_id: str) -> list[tuple[int, str]]:
    with services.store.audit.snapshot() as snapshot:
        return [(r.seq, r.action) for r in snapshot.records() if r.event_id == event_id]


@pytest.mark.parametrize("judged", [_judged_later, _judged_at_intake], ids=["later", "intake"])
@pytest.mark.parametrize("change", [necessity_rewritten, _in_event], ids=["decision", "event"])
def test_a_judgement_rewritten_in_the_database_fails_verification(services, judged, change):
    event_id = judged(services)
    assert services.audit.verify().intact

    rewrite_transfer(services.store.url, event_id, change)

    report = services.audit.verify()
    assert not report.intact
    assert report.verification.intact, "the records themselves are untouched"
    (problem,) = report.as_dict()["judgements"]["errors"]
    decided = _basis_decided_seq(services, event_id)
    assert problem.startswith(
        f"The judgement whose digest audit record {decided} holds has changed"
    )
    assert event_id not in problem, "every auditor reads this: no other authority's event id"


def _taken_out(row) -> dict:
    return {"decision": {k: v for k, v in row.decision.items() if k != "judgement"}}


def _put_in(row) -> dict:
    return {"decision": {**row.decision, "judgement": judgements.as_recorded(judgements.share())}}


def test_a_judgement_taken_out_of_its_decision_or_put_into_another_fails_verification(services):
    judged = _judged_later(services)
    services.store.add_isp(examples.pan_london_isp())
    services.relay.receive(examples.encode(examples.routine("under-isp")), sender=EMBEDDED)
    rewrite_transfer(services.store.url, judged, _taken_out)
    rewrite_transfer(services.store.url, "under-isp", _put_in)

    report = services.audit.verify()
    assert not report.intact and report.verification.intact
    taken = _basis_decided_seq(services, judged)
    assert report.judgements.problems == [
        "A transfer holds a judgement that its latest basis decision in the audit does not rest "
        "on: the judgement was added, or the records of the decision that rested on it were "
        "removed.",
        f"The judgement whose digest audit record {taken} holds is no longer stored: it was "
        "taken from its transfer, or the transfer removed.",
    ]


def _as_an_earlier_release_chained_them(database) -> None:
    """Every audit record as a release before judgements' digests wrote it: the judgement
    summaries without ``sha256``, every hash from the first of them on recomputed."""
    records = AuditRecord.__table__
    with database.begin() as conn:
        rows = conn.execute(sa.select(records).order_by(records.c.seq)).all()
        prev = GENESIS
        for row in rows:
            detail = _without_digest(row.action, row.detail)
            digest = record_hash(row.seq, row.recorded_at, row.event_id, row.action, detail, prev)
            conn.execute(
                sa.update(records)
                .where(records.c.seq == row.seq)
                .values(detail=detail, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(sa.update(AuditChainHead.__table__).values(hash=prev))


def _without_digest(action: str, detail: dict) -> dict:
    if action == "judgement_recorded":
        return {key: value for key, value in detail.items() if key != "sha256"}
    if action == "basis_decided" and "judgement" in detail:
        return {**detail, "judgement": _without_digest("judgement_recorded", detail["judgement"])}
    return detail


def test_judgements_recorded_before_their_digests_verify_and_are_counted_as_not_checked(
    services, database
):
    earlier = [_judged_later(services), _judged_at_intake(services)]
    _as_an_earlier_release_chained_them(database)
    assert not any("sha256" in str(d) for _, a, d in audit_actions(services.store) if a != "signed")
    # Undetectable, and not claimed to have been checked:
    rewrite_transfer(services.store.url, earlier[0], necessity_rewritten)

    report = services.audit.verify().as_dict()
    assert report["intact"], report
    assert report["judgements"] == {"checked": 0, "not_checked": 2, "errors": []}

    recorded_now = _judged_later(services, "parked-2")
    assert services.audit.verify().as_dict()["judgements"] == {
        "checked": 1,
        "not_checked": 2,
        "errors": [],
    }
    rewrite_transfer(services.store.url, recorded_now, _in_event)
    assert not services.audit.verify().intact


def _set_aside_rewritten(row) -> dict:
    decision = row.decision
    decision["set_aside_judgement"]["reasons"]["necessity"] = "Rewritten."
    return {"decision": decision}


def _set_aside_taken_out(row) -> dict:
    return {"decision": {k: v for k, v in row.decision.items() if k != "set_aside_judgement"}}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set_aside_rewritten, "has changed since it was recorded"),
        (_set_aside_taken_out, "is no longer stored"),
    ],
    ids=["rewritten", "taken-out"],
)
def test_a_judgement_set_aside_at_intake_is_vouched_for_as_well(services, change, problem):
    """The judgement that came with the event for the wrong recipient is kept once a
    colleague's decides the transfer; rewriting or removing it fails verification too."""
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    event["data"]["sharing"]["judgement"] = judgements.share(recipients=["E09000012"])
    services.relay.receive(examples.encode(event), sender=EMBEDDED)
    services.judgements.record(event["id"], judgements.not_share(), by=PRACTITIONER)
    report = services.audit.verify()
    assert report.intact and report.judgements.checked == 2, report.as_dict()["judgements"]

    rewrite_transfer(services.store.url, event["id"], change)

    report = services.audit.verify()
    assert not report.intact and report.verification.intact
    [set_aside] = [
        seq for seq, action in _records(services, event["id"]) if action == "judgement_set_aside"
    ]
    assert report.judgements.problems == [
        f"The judgement whose digest audit record {set_aside} holds {problem}"
        + (
            ": its transfer stores another."
            if "changed" in problem
            else ": it was taken from its transfer, or the transfer removed."
        )
    ]
