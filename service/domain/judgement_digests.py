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


def judgement_digest(judgement: dict[str, Any]) -> str:
    """The SHA-256 of a judgement record as stored (its contract's JSON form), in hex."""
    return hashlib.sha256(canonical_json(judgement)).hexdigest()


@dataclass(frozen=True)
class StoredJudgement:
    """A transfer's judgement as stored: in its decision, and in its stored event (None if
    the event no longer carries one)."""

    event_id: str
    in_decision: dict[str, Any]
    in_event: dict[str, Any] | None


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

    def noting(self, records: Iterable[ChainRecord]) -> Iterator[ChainRecord]:
        """``records``, unchanged, noting each transfer's latest basis decision on the way."""
        for record in records:
            if record.action == BASIS_DECIDED and record.event_id is not None:
                judgement = record.detail.get("judgement")
                if judgement is None:
                    self._latest.pop(record.event_id, None)
                else:
                    self._latest[record.event_id] = _Decided(record.seq, judgement.get("sha256"))
            yield record

    def check(self, stored: Iterable[StoredJudgement]) -> JudgementCheck:
        """Hold every transfer's stored judgement against the digest its latest basis decision
        holds; ``stored``: every transfer whose decision holds a judgement. Problems come in
        the order of their records, a judgement no decision rests on first."""
        result, problems = JudgementCheck(), []
        for judgement in stored:
            decided = self._latest.pop(judgement.event_id, None)
            if decided is None:
                problems.append((0, ADDED))
            elif decided.digest is None:
                result.not_checked += 1
            else:
                result.checked += 1
                copies = (judgement.in_decision, judgement.in_event)
                if any(c is None or judgement_digest(c) != decided.digest for c in copies):
                    problems.append((decided.seq, _changed(decided.seq)))
        problems += [
            (decided.seq, _gone(decided.seq))
            for decided in self._latest.values()
            if decided.digest is not None
        ]
        result.problems = [problem for _, problem in sorted(problems)]
        return result


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
