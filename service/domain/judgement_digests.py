"""Practitioners' judgements vouched for by the audit chain, without their prose in it.

A judgement's reasons, consent explanation and practitioner details are kept with its transfer
(in its decision and its stored event), not in the permanent audit, which says what happened and
why but holds no prose that may describe the child. So the audit record of a basis decision that
rests on a judgement carries the SHA-256 of the judgement's canonical JSON (``judgement_digest``)
and verification recomputes it from each transfer as stored: a rewrite of why a practitioner
decided, above all a decision not to share, which is never sent anywhere, is found even though
every audit record is untouched. A decision's records written before digests were (by an
earlier release) carry none; their judgements are counted as not checked, never as altered.

Problems name audit records by seq, never transfers by event id: the chain's verification is
shown to every auditor, and a transfer's id is its two authorities' alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from service.domain.audit_chain import ChainRecord
from service.domain.canonical import canonical_json

# The audit action whose detail says what basis a transfer's decision rests on; its
# ``judgement`` (if any) is the judgement's summary, with its digest under ``sha256``.
BASIS_DECIDED = "basis_decided"
# The audit action of a judgement that came with a transfer but does not count for it: its
# detail is the judgement's summary, with its digest under ``sha256``. The decision keeps the
# judgement (``set_aside_judgement``) after a later one has replaced it in the event.
JUDGEMENT_SET_ASIDE = "judgement_set_aside"


def judgement_digest(judgement: dict[str, Any]) -> str:
    """The SHA-256 of a judgement record as stored (its contract's JSON form), in hex."""
    return hashlib.sha256(canonical_json(judgement)).hexdigest()


@dataclass(frozen=True)
class StoredJudgement:
    """A transfer's judgements as stored: the one its decision rests on, in its decision and
    in its stored event (None if the event no longer carries one), or None if its decision
    rests on none; and one it set aside, as its decision keeps it, if any."""

    event_id: str
    in_decision: dict[str, Any] | None
    in_event: dict[str, Any] | None
    set_aside: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Decided:
    """A transfer's latest basis decision record that rests on a judgement."""

    seq: int
    digest: str | None  # None: a judgement recorded before digests were


@dataclass
class JudgementCheck:
    checked: int = 0
    not_checked: int = 0  # recorded before the audit held judgements' digests
    problems: list[str] = field(default_factory=list)


class JudgementLedger:
    """The judgement digests a chain's basis decisions hold, noted as the chain is walked.

    Only transfers whose latest decision rests on a judgement are kept, so that walking a
    chain of a million ISP-based transfers holds next to nothing."""

    def __init__(self) -> None:
        self._latest: dict[str, _Decided] = {}
        self._set_aside: dict[str, _Decided] = {}

    def noting(self, records: Iterable[ChainRecord]) -> Iterator[ChainRecord]:
        """``records``, unchanged, noting each transfer's latest basis decision on the way,
        and any judgement it set aside (few: one that came with the event and did not count)."""
        for record in records:
            if record.event_id is not None:
                self._note(record)
            yield record

    def _note(self, record: ChainRecord) -> None:
        if record.action == BASIS_DECIDED:
            judgement = record.detail.get("judgement")
            if judgement is None:
                self._latest.pop(record.event_id, None)
            else:
                self._latest[record.event_id] = _Decided(record.seq, judgement.get("sha256"))
        elif record.action == JUDGEMENT_SET_ASIDE:
            self._set_aside[record.event_id] = _Decided(record.seq, record.detail["sha256"])

    def check(self, stored: Iterable[StoredJudgement]) -> JudgementCheck:
        """Hold every transfer's stored judgements against the digests the audit holds for
        them; ``stored``: every transfer whose decision holds a judgement. Problems come in
        the order of their records, a judgement no record vouches for first."""
        result, problems = JudgementCheck(), []
        for judgement in stored:
            if judgement.in_decision is not None:
                copies = (judgement.in_decision, judgement.in_event)
                decided = self._latest.pop(judgement.event_id, None)
                problems += _held(copies, decided, result)
            if judgement.set_aside is not None:
                noted = self._set_aside.pop(judgement.event_id, None)
                problems += _held((judgement.set_aside,), noted, result)
        problems += [
            (noted.seq, _gone(noted.seq))
            for noted in (*self._latest.values(), *self._set_aside.values())
            if noted.digest is not None
        ]
        result.problems = [problem for _, problem in sorted(problems)]
        return result


def _held(
    copies: tuple[dict[str, Any] | None, ...], noted: _Decided | None, result: JudgementCheck
) -> list[tuple[int, str]]:
    """The problem, if any, with a judgement's stored ``copies`` against the audit record that
    ``noted`` its digest (None: no record does); counted in ``result`` if checked."""
    if noted is None:
        return [(0, ADDED)]
    if noted.digest is None:
        result.not_checked += 1
        return []
    result.checked += 1
    if any(c is None or judgement_digest(c) != noted.digest for c in copies):
        return [(noted.seq, _changed(noted.seq))]
    return []


ADDED = (
    "A transfer holds a judgement that its latest basis decision in the audit does not rest "
    "on: the judgement was added, or the records of the decision that rested on it were removed."
)


def _changed(seq: int) -> str:
    return (
        f"The judgement whose digest audit record {seq} holds has changed since it was "
        "recorded: its transfer stores another."
    )


def _gone(seq: int) -> str:
    return (
        f"The judgement whose digest audit record {seq} holds is no longer stored: it was taken "
        "from its transfer, or the transfer removed."
    )
