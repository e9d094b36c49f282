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
from collections import deque
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


# The head of a log whose head row is gone. The row is made with the log and never removed, so
# under records it means the one statement of how far the log reached was taken away.
MISSING_HEAD = Anchor(0, GENESIS, "the chain head")


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
    vouches for the whole chain (its last record; ``MISSING_HEAD`` if the log has lost it).
    The earliest problem found is reported. Memory stays the same however long the chain: only
    the last ``RECENT`` hashes are kept, and the checkpoints are checked as the walk passes them.
    """
    prefix = _Prefix(checkpoints)
    remaining = iter(records)
    found = None
    for record in remaining:
        if (
            record.seq == prefix.seq + 1
            and record.prev_hash == prefix.hash
            and _rehash(record) == record.hash
        ):
            prefix.accept(record.hash)
            continue
        found = _diagnose(record, prefix, _Later(record, prefix.hash, remaining))
        break
    findings = [f for f in (found, prefix.checkpoint_finding()) if f is not None]
    if found is None and head is not None:
        findings += [f for f in [_check_head(prefix.seq, prefix.hash, head)] if f is not None]
    first = min(findings, key=lambda f: f.seq) if findings else None
    return Verification(prefix.seq, prefix.seq, prefix.hash, first)


# How many of the latest accepted hashes a walk keeps, to name the record a broken link goes
# back to (a run of inserted records, say): about 1 MB. A link further back than that is
# reported as an edit where the chain breaks.
RECENT = 10_000


class _Prefix:
    """The records accepted so far, as a walk keeps them: the last seq and hash, the latest
    hashes, and the first checkpoint they contradict, checked as the walk passes its seq."""

    def __init__(self, checkpoints: Sequence[Anchor]) -> None:
        self.seq, self.hash = 0, GENESIS
        self._recent = deque([GENESIS], maxlen=RECENT)
        self._anchors = deque(sorted(checkpoints, key=lambda a: a.seq))
        self._last_good = 0  # the seq of the last checkpoint that held
        self._contradicted: Finding | None = None
        self._check_anchors()

    def accept(self, digest: str) -> None:
        self.seq, self.hash = self.seq + 1, digest
        self._recent.append(digest)
        self._check_anchors()

    def origin(self, digest: str) -> int | None:
        """The seq of the recent accepted record with hash ``digest``, if there is one."""
        for back, recent in enumerate(reversed(self._recent)):
            if recent == digest:
                return self.seq - back
        return None

    def _check_anchors(self) -> None:
        while self._anchors and self._anchors[0].seq <= self.seq:
            anchor = self._anchors.popleft()
            if self._contradicted is not None:
                continue
            if anchor.hash != self.hash:
                self._contradicted = Finding(
                    self._last_good + 1,
                    Damage.EDITED,
                    f"Record {anchor.seq} does not have the hash {anchor.source} vouches for: "
                    f"records {self._last_good + 1} to {anchor.seq} were rewritten.",
                )
            else:
                self._last_good = anchor.seq

    def checkpoint_finding(self) -> Finding | None:
        """The first checkpoint the accepted records contradict; beyond them, a truncated log."""
        if self._contradicted is not None or not self._anchors:
            return self._contradicted
        anchor = self._anchors[0]
        return Finding(
            self.seq + 1,
            Damage.DELETED,
            f"The log ends at seq {self.seq} but {anchor.source} covers seq {anchor.seq}.",
        )


class _Later:
    """What a diagnosis needs of the records after a break, read in one pass without keeping
    them (the pass also lets a caller that watches the records see every one)."""

    def __init__(self, record: ChainRecord, last_hash: str, later: Iterable[ChainRecord]) -> None:
        self.any = False
        self.next_links_to_last = False  # the record right after links to the last accepted
        self.successor: int | None = None  # the first later record that links to it
        self.holds_its_link = False  # a later record has the hash ``record`` links to
        for r in later:
            if not self.any:
                self.any, self.next_links_to_last = True, r.prev_hash == last_hash
            if self.successor is None and r.prev_hash == last_hash:
                self.successor = r.seq
            self.holds_its_link = self.holds_its_link or r.hash == record.prev_hash


def _diagnose(record: ChainRecord, prefix: _Prefix, later: _Later) -> Finding:
    """Why ``record`` does not follow the accepted chain ``prefix``, given the records after."""
    last_seq, last_hash = prefix.seq, prefix.hash
    expected = last_seq + 1
    successor = later.successor
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
        if later.next_links_to_last:
            return Finding(
                record.seq,
                Damage.INSERTED,
                f"It is not part of the chain: the record after it links to record {last_seq}.",
            )
        return Finding(record.seq, Damage.EDITED, "Its content no longer matches its hash.")
    origin = prefix.origin(record.prev_hash)
    if origin is not None:
        return Finding(
            origin + 1,
            Damage.INSERTED,
            f"Record {origin + 1} is not part of the chain: record {record.seq} links to "
            f"record {origin}.",
        )
    if successor is not None:
        if later.holds_its_link:
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


def _check_head(last: int, last_hash: str, head: Anchor) -> Finding | None:
    if head is MISSING_HEAD:
        if last == 0:
            return None  # an emptied log: its next append makes the head again
        return Finding(
            last + 1,
            Damage.DELETED,
            f"The chain head is missing, so nothing shows where the log ended: records after "
            f"seq {last} may have been cut off.",
        )
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
    if head.hash != last_hash:
        return Finding(last, Damage.EDITED, f"Its hash differs from {head.source}.")
    return None
