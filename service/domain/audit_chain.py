"""The audit log's hash chain: how a record is hashed, and how a chain is checked.

Each record carries the hash of the one before it (``prev_hash``; the first carries ``GENESIS``)
and its own hash: SHA-256 over the canonical JSON of its sequence number, time (ISO 8601 UTC,
microseconds), event id, action, detail and ``prev_hash``. Changing, removing, adding or moving
any record therefore breaks the chain at that point, and ``verify_chain`` names the first record
where it breaks and what was most likely done there.

A chain alone cannot tell a rewritten tail from a genuine one (whoever can write the table can
recompute every later hash), so the walk also checks anchors kept elsewhere: signed checkpoints
of the head (``Anchor``s for a prefix of the chain) and the head row the appender maintains.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from service.domain.canonical import canonical_json

GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainRecord:
    seq: int
    recorded_at: datetime
    event_id: str | None
    action: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def timestamp(moment: datetime) -> str:
    """The one text form of a record's time that goes into its hash."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(
    seq: int,
    recorded_at: datetime,
    event_id: str | None,
    action: str,
    detail: dict[str, Any],
    prev_hash: str,
) -> str:
    encoded = canonical_json(
        {
            "seq": seq,
            "recorded_at": timestamp(recorded_at),
            "event_id": event_id,
            "action": action,
            "detail": detail,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(encoded).hexdigest()


def _rehash(record: ChainRecord) -> str:
    return record_hash(
        record.seq,
        record.recorded_at,
        record.event_id,
        record.action,
        record.detail,
        record.prev_hash,
    )


class Damage(StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"


@dataclass(frozen=True)
class Finding:
    """The first record where the chain breaks, what was most likely done to it, and why."""

    seq: int
    damage: Damage
    reason: str


@dataclass(frozen=True)
class Anchor:
    """A (seq, hash) pair vouched for outside the records: a checkpoint or the chain head."""

    seq: int
    hash: str
    source: str


@dataclass(frozen=True)
class Verification:
    records: int
    head_seq: int
    head_hash: str
    finding: Finding | None

    @property
    def intact(self) -> bool:
        return self.finding is None


def verify_chain(
    records: Iterable[ChainRecord],
    *,
    checkpoints: Sequence[Anchor] = (),
    head: Anchor | None = None,
) -> Verification:
    """Walk ``records`` in seq order; report the first break, or none for an intact chain.

    ``checkpoints`` vouch for a prefix (the record at their seq must have their hash); ``head``
    vouches for the whole chain (its last record). The earliest problem found is reported.
    """
    hashes = [GENESIS]  # hashes[seq] for every record accepted so far
    remaining = iter(records)
    found = None
    for record in remaining:
        if (
            record.seq == len(hashes)
            and record.prev_hash == hashes[-1]
            and _rehash(record) == record.hash
        ):
            hashes.append(record.hash)
            continue
        later = [(r.seq, r.prev_hash, r.hash) for r in remaining]
        found = _diagnose(record, hashes, later)
        break
    findings = [f for f in (found, _check_checkpoints(hashes, checkpoints)) if f is not None]
    if found is None and head is not None:
        findings += [f for f in [_check_head(hashes, head)] if f is not None]
    first = min(findings, key=lambda f: f.seq) if findings else None
    return Verification(len(hashes) - 1, len(hashes) - 1, hashes[-1], first)


def _diagnose(record: ChainRecord, hashes: list[str], later: list[tuple[int, str, str]]) -> Finding:
    """Why ``record`` does not follow the accepted chain ``hashes``, given the records after it."""
    last_seq, last_hash = len(hashes) - 1, hashes[-1]
    expected = last_seq + 1
    successor = next((seq for seq, prev, _ in later if prev == last_hash), None)
    if record.seq > expected:
        if successor is not None:
            return Finding(
                expected,
                Damage.REORDERED,
                f"The record that follows record {last_seq} was moved to seq {successor}.",
            )
        gone = (
            f"Record {expected} is"
            if record.seq == expected + 1
            else (f"Records {expected} to {record.seq - 1} are")
        )
        return Finding(expected, Damage.DELETED, f"{gone} missing.")
    if record.seq < expected:
        return Finding(record.seq, Damage.INSERTED, f"A second record with seq {record.seq}.")
    if record.prev_hash == last_hash:
        if later and later[0][1] == last_hash:
            return Finding(
                record.seq,
                Damage.INSERTED,
                f"It is not part of the chain: the record after it links to record {last_seq}.",
            )
        return Finding(record.seq, Damage.EDITED, "Its content no longer matches its hash.")
    accepted = {h: seq for seq, h in enumerate(hashes)}
    if record.prev_hash in accepted:
        origin = accepted[record.prev_hash]
        return Finding(
            origin + 1,
            Damage.INSERTED,
            f"Record {origin + 1} is not part of the chain: record {record.seq} links to "
            f"record {origin}.",
        )
    if successor is not None:
        if record.prev_hash in {h for _, _, h in later}:
            return Finding(
                record.seq,
                Damage.REORDERED,
                f"It belongs after a later record; the record that follows record {last_seq} "
                f"is at seq {successor}.",
            )
        return Finding(
            record.seq,
            Damage.INSERTED,
            f"It is not part of the chain; the record that follows record {last_seq} is at "
            f"seq {successor}.",
        )
    if _rehash(record) == record.hash and last_seq > 0:
        return Finding(
            last_seq,
            Damage.EDITED,
            f"Record {last_seq} was replaced: record {record.seq} links to a different one.",
        )
    return Finding(record.seq, Damage.EDITED, "Neither its content nor its link fits the chain.")


def _check_checkpoints(hashes: list[str], checkpoints: Sequence[Anchor]) -> Finding | None:
    """The first checkpoint the accepted records contradict; beyond them, a truncated log."""
    last_good = 0
    for anchor in sorted(checkpoints, key=lambda a: a.seq):
        if anchor.seq >= len(hashes):
            return Finding(
                len(hashes),
                Damage.DELETED,
                f"The log ends at seq {len(hashes) - 1} but {anchor.source} covers seq "
                f"{anchor.seq}.",
            )
        if hashes[anchor.seq] != anchor.hash:
            return Finding(
                last_good + 1,
                Damage.EDITED,
                f"Record {anchor.seq} does not have the hash {anchor.source} vouches for: records "
                f"{last_good + 1} to {anchor.seq} were rewritten.",
            )
        last_good = anchor.seq
    return None


def _check_head(hashes: list[str], head: Anchor) -> Finding | None:
    last = len(hashes) - 1
    if head.seq > last:
        return Finding(
            last + 1, Damage.DELETED, f"The log ends at seq {last} but {head.source} is {head.seq}."
        )
    if head.seq < last:
        return Finding(
            head.seq + 1,
            Damage.INSERTED,
            f"Records after {head.source} (seq {head.seq}) were not appended by the relay.",
        )
    if head.hash != hashes[last]:
        return Finding(last, Damage.EDITED, f"Its hash differs from {head.source}.")
    return None
