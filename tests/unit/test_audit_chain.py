"""The hash chain on its own: how records are hashed, and what a broken chain is reported as."""

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from service.domain.audit_chain import (
    GENESIS,
    Anchor,
    ChainRecord,
    Damage,
    record_hash,
    verify_chain,
)

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _chain(count: int, start_seq: int = 1, prev: str = GENESIS) -> list[ChainRecord]:
    records = []
    for seq in range(start_seq, start_seq + count):
        at, detail = START + timedelta(seconds=seq), {"n": seq, "note": "café"}
        digest = record_hash(seq, at, f"event-{seq}", "received", detail, prev)
        records.append(ChainRecord(seq, at, f"event-{seq}", "received", detail, prev, digest))
        prev = digest
    return records


def _rechained(records: list[ChainRecord], prev: str) -> list[ChainRecord]:
    """Records relinked and rehashed from ``prev``, as a forger who can write the table would."""
    out = []
    for r in records:
        digest = record_hash(r.seq, r.recorded_at, r.event_id, r.action, r.detail, prev)
        out.append(replace(r, prev_hash=prev, hash=digest))
        prev = digest
    return out


def _head(records: list[ChainRecord]) -> Anchor:
    return Anchor(records[-1].seq, records[-1].hash, "the chain head")


def test_the_hash_is_sha256_of_one_canonical_encoding_of_the_record():
    # A change to the encoding would make every stored chain fail to verify; this pins it.
    at = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    encoded = (
        '{"action":"received","detail":{"a":null,"b":[1,"ü"]},"event_id":"e-1",'
        f'"prev_hash":"{GENESIS}","recorded_at":"2026-11-24T09:00:00.123456Z","seq":1}}'
    )
    digest = record_hash(1, at, "e-1", "received", {"b": [1, "ü"], "a": None}, GENESIS)
    assert digest == hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    assert record_hash(2, at, "e-1", "received", {"a": None, "b": [1, "ü"]}, GENESIS) != digest


def test_an_untouched_chain_verifies_and_reports_its_head():
    records = _chain(5)
    result = verify_chain(records, head=_head(records))
    assert result.intact
    assert (result.records, result.head_seq, result.head_hash) == (5, 5, records[-1].hash)


def test_an_empty_chain_verifies():
    assert verify_chain([], head=Anchor(0, GENESIS, "the chain head")).intact


def test_an_edited_record_is_named():
    records = _chain(6)
    records[2] = replace(records[2], detail={"n": 3, "note": "changed"})
    finding = verify_chain(records).finding
    assert (finding.seq, finding.damage) == (3, Damage.EDITED)


def test_an_edited_record_whose_hash_was_recomputed_is_named_by_the_next_link():
    records = _chain(6)
    records[2:3] = _rechained([replace(records[2], action="withheld")], records[1].hash)
    finding = verify_chain(records).finding
    assert (finding.seq, finding.damage) == (3, Damage.EDITED)


def test_a_deleted_record_is_named():
    records = _chain(6)
    del records[3]
    finding = verify_chain(records).finding
    assert (finding.seq, finding.damage) == (4, Damage.DELETED)


def test_deleting_the_first_record_is_seen():
    finding = verify_chain(_chain(4)[1:]).finding
    assert (finding.seq, finding.damage) == (1, Damage.DELETED)


def test_a_forged_record_inserted_with_a_valid_hash_is_named():
    records = _chain(6)
    forged = _rechained([replace(records[2], event_id="forged")], records[1].hash)[0]
    shifted = [replace(r, seq=r.seq + 1) for r in records[2:]]
    finding = verify_chain([*records[:2], forged, *shifted]).finding
    assert (finding.seq, finding.damage) == (3, Damage.INSERTED)


def test_a_forged_record_inserted_with_a_made_up_hash_is_named():
    records = _chain(6)
    forged = replace(records[2], event_id="forged", hash="f" * 64)
    shifted = [replace(r, seq=r.seq + 1) for r in records[2:]]
    finding = verify_chain([*records[:2], forged, *shifted]).finding
    assert (finding.seq, finding.damage) == (3, Damage.INSERTED)


def test_two_records_that_swapped_places_are_named_as_reordered():
    records = _chain(6)
    swapped = [*records[:2], replace(records[4], seq=3), records[3], replace(records[2], seq=5)]
    finding = verify_chain([*swapped, records[5]]).finding
    assert (finding.seq, finding.damage) == (3, Damage.REORDERED)


def test_neighbours_that_swapped_places_are_named_as_reordered():
    records = _chain(4)
    swapped = [records[0], replace(records[2], seq=2), replace(records[1], seq=3), records[3]]
    finding = verify_chain(swapped).finding
    assert (finding.seq, finding.damage) == (2, Damage.REORDERED)


def test_a_record_moved_to_the_end_is_named_as_reordered():
    records = _chain(5)
    moved = [*records[:1], *records[2:], replace(records[1], seq=6)]
    finding = verify_chain(moved).finding
    assert (finding.seq, finding.damage) == (2, Damage.REORDERED)


def test_records_cut_off_the_end_are_caught_by_the_head():
    records = _chain(5)
    finding = verify_chain(records[:3], head=_head(records)).finding
    assert (finding.seq, finding.damage) == (4, Damage.DELETED)


def test_records_added_after_the_head_are_caught_by_the_head():
    records = _chain(5)
    finding = verify_chain(records, head=_head(records[:4])).finding
    assert (finding.seq, finding.damage) == (5, Damage.INSERTED)


def test_a_rewritten_tail_is_caught_by_the_head():
    # A forger who can write the table rewrites the last records and recomputes their hashes:
    # the chain alone cannot tell, but the head row the appender keeps still names the old hash.
    records = _chain(5)
    rewritten = records[:3] + _rechained(
        [replace(records[3], detail={"n": 4, "note": "rewritten"}), records[4]], records[2].hash
    )
    assert verify_chain(rewritten).intact  # the chain alone cannot tell
    finding = verify_chain(rewritten, head=_head(records)).finding
    assert (finding.seq, finding.damage) == (5, Damage.EDITED)
    assert "the chain head" in finding.reason


def test_a_recomputed_chain_is_caught_by_a_checkpoint_signed_before():
    records = _chain(8)
    checkpoint = Anchor(6, records[5].hash, "the checkpoint signed at 09:00")
    early = Anchor(2, records[1].hash, "the checkpoint signed at 08:00")
    rewritten = records[:3] + _rechained(
        [replace(records[3], detail={"n": 4, "note": "rewritten"}), *records[4:]], records[2].hash
    )
    assert verify_chain(rewritten).intact  # the chain alone cannot tell
    finding = verify_chain(rewritten, checkpoints=[early, checkpoint]).finding
    assert (finding.seq, finding.damage) == (3, Damage.EDITED)
    assert "records 3 to 6 were rewritten" in finding.reason


def test_a_checkpoint_beyond_the_end_shows_records_were_cut_off():
    records = _chain(5)
    anchor = Anchor(5, records[4].hash, "the checkpoint signed at 09:00")
    finding = verify_chain(records[:4], checkpoints=[anchor]).finding
    assert (finding.seq, finding.damage) == (5, Damage.DELETED)


def test_the_earliest_problem_is_reported():
    records = _chain(8)
    records[6] = replace(records[6], detail={"edited": True})
    anchor = Anchor(3, "0" * 63 + "1", "the checkpoint signed at 09:00")
    finding = verify_chain(records, checkpoints=[anchor]).finding
    assert (finding.seq, finding.damage) == (1, Damage.EDITED)


def test_a_deletion_hidden_by_renumbering_shows_as_an_edit_at_that_record():
    records = _chain(6)
    renumbered = [*records[:3], *(replace(r, seq=r.seq - 1) for r in records[4:])]
    finding = verify_chain(renumbered).finding
    assert (finding.seq, finding.damage) == (4, Damage.EDITED)
