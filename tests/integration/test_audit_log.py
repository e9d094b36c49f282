"""The audit log on a real database: rows changed, deleted, forged or reordered with SQL are
found at the right record; appends from many processes keep one chain; an append is part of the
transaction of the change it records."""

from concurrent.futures import ProcessPoolExecutor

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.exc import IntegrityError

from service.domain.audit_chain import Damage, record_hash
from service.secrets import SecretBox
from service.senders import EMBEDDED
from service.store.store import AuditEntry, NewTransfer, Store
from service.store.tables import AuditChainHead, AuditRecord
from tests.conftest import fixed_clock
from tests.support import examples
from tests.support.store_reads import audit_actions

records = AuditRecord.__table__
head = AuditChainHead.__table__
OLD_RECEIVED = {
    "case_reference": "CAF-OLD-1",
    "from_authority": "E09000012",
    "to_authority": "E09000019",
}


def _populate(services) -> int:
    """An ISP and the four example transfers: 15 audit records. Returns how many."""
    services.store.add_isp(examples.pan_london_isp())
    for name in examples.ALL_EVENTS:
        services.relay.receive(examples.encode(examples.event(name)), sender=EMBEDDED)
    return len(audit_actions(services.store))


@pytest.fixture
def database(services):
    engine = sa.create_engine(services.store.url)
    yield engine
    engine.dispose()


def _row(conn, seq: int):
    return conn.execute(sa.select(records).where(records.c.seq == seq)).one()


def _move(conn, where, shift: int) -> None:
    """Shift the seqs of the rows ``where`` selects, without tripping the unique seq index."""
    conn.execute(sa.update(records).where(where).values(seq=-records.c.seq))
    conn.execute(sa.update(records).where(records.c.seq < 0).values(seq=-records.c.seq + shift))


def _edit_detail(conn) -> None:
    conn.execute(
        sa.update(records).where(records.c.seq == 7).values(detail={"shared": ["everything"]})
    )


def _delete(conn) -> None:
    conn.execute(sa.delete(records).where(records.c.seq == 7))


def _insert_forged(conn) -> None:
    """A forger's row at seq 7 that links to record 6 and carries a correct hash of itself."""
    before = _row(conn, 6)
    _move(conn, records.c.seq >= 7, 1)
    at, detail = before.recorded_at, {"reason": "forged"}
    digest = record_hash(7, at, before.event_id, "withheld", detail, before.hash)
    conn.execute(
        sa.insert(records).values(
            seq=7,
            recorded_at=at,
            event_id=before.event_id,
            action="withheld",
            detail=detail,
            prev_hash=before.hash,
            hash=digest,
        )
    )


def _swap(conn) -> None:
    conn.execute(sa.update(records).where(records.c.seq == 7).values(seq=-1))
    conn.execute(sa.update(records).where(records.c.seq == 9).values(seq=7))
    conn.execute(sa.update(records).where(records.c.seq == -1).values(seq=9))


def test_an_untouched_log_verifies(services):
    count = _populate(services)
    report = services.audit.verify()
    assert report.intact
    assert report.verification.records == count == 15
    assert report.verification.head_seq == 15


def test_appends_go_on_while_a_verification_reads_and_it_sees_the_chain_as_it_began(services):
    count = _populate(services)
    with services.store.audit.snapshot() as snapshot:
        services.store.record_audit(None, "appended_meanwhile", {})  # not held up by the read
        assert len(list(snapshot.records())) == count
        assert snapshot.head.seq == count
    assert services.audit.verify().verification.records == count + 1


def test_a_detail_holding_what_the_fast_encoder_cannot_write_is_stored_exactly(services):
    detail = {
        "big": 2**70,
        "text": 'Zo\u00eb \u2028 "quoted"',
        "ratio": 1e-05,
        "nested": [1, {"a": None}],
    }
    services.store.record_audit(None, "noted", detail)
    services.store.record_audit(None, "keyed", {7: "seven"})
    assert audit_actions(services.store)[-2:] == [
        (None, "noted", detail),
        (None, "keyed", {"7": "seven"}),
    ]
    assert services.audit.verify().intact


@pytest.mark.parametrize(
    "tamper, damage",
    [
        (_edit_detail, Damage.EDITED),
        (_delete, Damage.DELETED),
        (_insert_forged, Damage.INSERTED),
        (_swap, Damage.REORDERED),
    ],
    ids=["changed", "deleted", "forged-insert", "reordered"],
)
def test_tampering_with_a_row_makes_verify_fail_at_that_record(services, database, tamper, damage):
    _populate(services)
    with database.begin() as conn:
        tamper(conn)
    report = services.audit.verify()
    assert not report.intact
    finding = report.verification.finding
    assert (finding.seq, finding.damage) == (7, damage)


def test_cutting_records_off_the_end_is_caught_by_the_chain_head(services, database):
    _populate(services)
    with database.begin() as conn:
        conn.execute(sa.delete(records).where(records.c.seq >= 14))
    finding = services.audit.verify().verification.finding
    assert (finding.seq, finding.damage) == (14, Damage.DELETED)


def test_cutting_records_off_the_end_and_deleting_the_chain_head_is_caught(services, database):
    _populate(services)
    with database.begin() as conn:
        conn.execute(sa.delete(records).where(records.c.seq == 15))
        conn.execute(sa.delete(head))
    report = services.audit.verify()
    finding = report.verification.finding
    assert (finding.seq, finding.damage) == (15, Damage.DELETED)
    assert "chain head is missing" in finding.reason
    assert services.audit.sign_checkpoint(report) is None  # no checkpoint vouches for the cut


def test_an_emptied_log_without_its_head_verifies_and_appends_again(services, database):
    with database.begin() as conn:
        conn.execute(sa.delete(head))
    assert services.audit.verify().intact
    services.store.record_audit(None, "after", {})
    assert services.audit.verify().verification.head_seq == 1


def test_a_chain_rewritten_with_fresh_hashes_is_caught_by_an_earlier_checkpoint(services, database):
    _populate(services)
    checkpoint = services.audit.sign_checkpoint(services.audit.verify())
    assert checkpoint.seq == 15
    with database.begin() as conn:
        prev = _row(conn, 4).hash
        for seq in range(5, 16):  # change record 5 and recompute every hash after it
            row = _row(conn, seq)
            detail = {"rewritten": True} if seq == 5 else row.detail
            digest = record_hash(seq, row.recorded_at, row.event_id, row.action, detail, prev)
            conn.execute(
                sa.update(records)
                .where(records.c.seq == seq)
                .values(detail=detail, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(sa.text("UPDATE audit_chain_head SET hash = :h"), {"h": prev})
    finding = services.audit.verify().verification.finding
    assert (finding.seq, finding.damage) == (1, Damage.EDITED)
    assert "records 1 to 15 were rewritten" in finding.reason


def test_a_checkpoint_whose_row_was_altered_is_reported(services, database):
    _populate(services)
    services.audit.sign_checkpoint(services.audit.verify())
    with database.begin() as conn:
        conn.execute(sa.text("UPDATE audit_checkpoints SET jws = replace(jws, 'ey', 'EY')"))
    report = services.audit.verify()
    assert not report.intact
    assert report.checkpoint_errors and "stored checkpoint 15" in report.checkpoint_errors[0]


def _append(url: str, process: int, count: int) -> None:
    store = Store(url, SecretBox([Fernet.generate_key().decode()]))
    try:
        for n in range(count):
            store.record_audit(None, "concurrency_test", {"process": process, "n": n})
    finally:
        store.close()


def test_appends_from_several_processes_at_once_keep_one_valid_chain(services):
    before = _populate(services)
    with ProcessPoolExecutor(4) as processes:
        list(processes.map(_append, [services.store.url] * 4, range(4), [25] * 4))
    report = services.audit.verify()
    assert report.intact
    assert report.verification.records == before + 100
    appended = [d for _, action, d in audit_actions(services.store) if action == "concurrency_test"]
    for process in range(4):
        assert [d["n"] for d in appended if d["process"] == process] == list(range(25))


def test_the_records_of_a_change_that_fails_go_with_it_and_leave_no_gap(services):
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)

    def transfer(action: str) -> NewTransfer:
        entries = [AuditEntry(action, {})]
        return NewTransfer(
            event,
            "awaiting_judgement",
            {"outcome": "x"},
            fixed_clock(),
            None,
            entries,
            EMBEDDED.sent_by,
        )

    services.store.record_intake([transfer("stored")])
    to_nobody = {**event, "id": "to-nobody", "data": {**event["data"], "to_authority": "E09999999"}}
    unstorable = NewTransfer(  # no such authority: the insert fails on its foreign key
        to_nobody,
        "awaiting_judgement",
        {"outcome": "x"},
        fixed_clock(),
        None,
        [AuditEntry("x", {})],
        EMBEDDED.sent_by,
    )
    with pytest.raises(IntegrityError):
        services.store.record_intake([unstorable])
    services.store.record_audit(None, "after", {})

    assert [action for _, action, _ in audit_actions(services.store)] == ["stored", "after"]
    report = services.audit.verify()
    assert report.intact and report.verification.head_seq == 2
