"""Audit operations for operators and auditors: verify the chain, sign checkpoints, search.

A checkpoint is the relay's signature (JWS, typ ``caf-audit-checkpoint+jws``) over
``{"seq", "hash", "at"}``: the chain's record ``seq`` had ``hash`` at time ``at``. Checkpoints
are kept in the store and may be copied anywhere; with the published JWKS anyone can check one
offline and then check that the chain still matches it. A checkpoint is signed only over a chain
that verifies, and only over the records verified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from contracts.api.audit import BASIS_KINDS
from contracts.common import MAX_PAGE, OUT_OF_UTC_RANGE, has_utc_time
from contracts.rfc3339 import rfc3339_moment
from service.access import Principal
from service.child_reads import AUDIT_SEARCH, ChildReads
from service.domain.audit_chain import Anchor, Verification, timestamp, verify_chain
from service.domain.child_keys import ChildKeys, identifier_from
from service.domain.judgement_digests import JudgementCheck, JudgementLedger
from service.signing import KeyRing, VerificationError, verify
from service.store.audit_log import AuditLog, StoredCheckpoint
from service.store.audit_search import AuditPage, AuditQuery, AuditSearch

CHECKPOINT_TYP = "caf-audit-checkpoint+jws"


@dataclass(frozen=True)
class SignedCheckpoint:
    seq: int
    hash: str
    at: str
    kid: str


def read_checkpoint(jws_text: str, jwks: dict[str, Any]) -> SignedCheckpoint:
    """The checkpoint a JWS states, once its signature and type check out; needs no database."""
    header, payload = verify(jws_text, jwks)
    if header.get("typ") != CHECKPOINT_TYP:
        raise VerificationError(f"Not an audit checkpoint (typ {header.get('typ')!r}).")
    try:
        return SignedCheckpoint(
            int(payload["seq"]), str(payload["hash"]), str(payload["at"]), header["kid"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"Not an audit checkpoint: {exc}") from exc


@dataclass(frozen=True)
class AuditReport:
    verification: Verification
    checkpoints_checked: int
    checkpoint_errors: list[str]
    judgements: JudgementCheck
    index_errors: list[str]  # where the search index differs from what the records give

    @property
    def chain_intact(self) -> bool:
        """The records and the checkpoints agree; what is stored beside them aside."""
        return self.verification.intact and not self.checkpoint_errors

    @property
    def intact(self) -> bool:
        return self.chain_intact and not self.judgements.problems and not self.index_errors

    def as_dict(self) -> dict[str, Any]:
        finding = self.verification.finding
        return {
            "intact": self.intact,
            "records": self.verification.records,
            "head": {"seq": self.verification.head_seq, "hash": self.verification.head_hash},
            "first_bad_record": None
            if finding is None
            else {"seq": finding.seq, "damage": finding.damage.value, "reason": finding.reason},
            "checkpoints": {
                "checked": self.checkpoints_checked,
                "errors": self.checkpoint_errors,
            },
            "judgements": {
                "checked": self.judgements.checked,
                "not_checked": self.judgements.not_checked,
                "errors": self.judgements.problems,
            },
            "index": {"errors": self.index_errors},
        }


class Audit:
    def __init__(self, log: AuditLog, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self._log = log
        self._keyring = keyring
        self._clock = clock

    def verify(
        self, extra_checkpoints: Iterable[str] = (), jwks: dict[str, Any] | None = None
    ) -> AuditReport:
        """Walk the chain against its head, the stored checkpoints and ``extra_checkpoints``,
        hold the judgements stored with transfers against the digests the chain holds, and the
        search index against the one the records give (a search, an export, reads through it).

        Checkpoints (stored ones, and JWS texts kept elsewhere) are checked with the relay's
        current key plus any keys in ``jwks``, e.g. the published JWKS with retired keys.
        """
        keys = {"keys": [*self._keyring.jwks()["keys"], *(jwks or {}).get("keys", [])]}
        errors: list[str] = []
        anchors: list[Anchor] = []
        with self._log.snapshot() as snapshot:
            for stored in snapshot.checkpoints:
                anchor = _anchor(stored.jws, keys, f"stored checkpoint {stored.seq}", errors)
                if anchor is not None and (anchor.seq, anchor.hash) != (stored.seq, stored.hash):
                    errors.append(f"Stored checkpoint {stored.seq} differs from what it signs.")
                anchors += [anchor] if anchor else []
            for number, text in enumerate(extra_checkpoints, 1):
                anchor = _anchor(text, keys, f"checkpoint file {number}", errors)
                anchors += [anchor] if anchor else []
            ledger = JudgementLedger()
            verification = verify_chain(
                ledger.noting(snapshot.records()), checkpoints=anchors, head=snapshot.head
            )
            judgements = ledger.check(snapshot.judgements())
            index_errors = snapshot.index_problems()
        return AuditReport(verification, len(anchors), errors, judgements, index_errors)

    def sign_checkpoint(self, report: AuditReport) -> StoredCheckpoint | None:
        """Sign and keep the head ``report`` verified; None if the chain is broken or empty.

        A judgement that no longer matches its digest, or a search index that no longer matches
        the records, does not stop it: the checkpoint keeps the records, as evidence, from a
        later rewrite of them.
        """
        head_seq, head_hash = report.verification.head_seq, report.verification.head_hash
        if not report.chain_intact or head_seq == 0:
            return None
        now = self._clock()
        payload = {"seq": head_seq, "hash": head_hash, "at": timestamp(now)}
        checkpoint = StoredCheckpoint(
            head_seq, head_hash, now, self._keyring.kid, self._keyring.sign(payload, CHECKPOINT_TYP)
        )
        self._log.add_checkpoint(checkpoint)
        return checkpoint


def _anchor(text: str, jwks: dict[str, Any], name: str, errors: list[str]) -> Anchor | None:
    """The anchor a checkpoint JWS gives, or None with the reason added to ``errors``."""
    try:
        checkpoint = read_checkpoint(text, jwks)
    except VerificationError as exc:
        errors.append(f"{name}: {exc}")
        return None
    return Anchor(checkpoint.seq, checkpoint.hash, f"the checkpoint signed at {checkpoint.at}")


# A seq is a 64-bit row id: a cursor past it is past the end, not a question for the database.
LARGEST_SEQ = 2**63 - 1


class AuditSearches:
    """The audit searches a reader asks for (an API caller, the operator at the command line),
    of what it may read: its own authority's transfers (``AuditQuery.viewer``), or everything
    for a global admin. A search that names a child is a read of that child's record, and is
    recorded as one (``service.child_reads``) before its page is given."""

    def __init__(self, search: AuditSearch, child_keys: ChildKeys, reads: ChildReads) -> None:
        self._search = search
        self._child_keys = child_keys
        self._reads = reads

    def page(self, params: Mapping[str, Any], reader: Principal) -> AuditPage:
        """One page of what ``params`` select (``audit_query``: ValueError for a bad one)."""
        query = replace(audit_query(params, self._child_keys), viewer=reader.authority)
        page = self._search.search(query)
        if query.child_key:
            transfers = {r["event_id"] for r in page.records if r["event_id"] is not None}
            self._reads.record(reader, AUDIT_SEARCH, query.child_key, len(transfers))
        return page


def audit_query(params: Mapping[str, Any], child_keys: ChildKeys) -> AuditQuery:
    """The search that request parameters (an API request, CLI options) describe.

    Raises ValueError, with a message for the caller, for a parameter that makes no sense.
    """
    identifier = identifier_from(params)
    basis = params.get("basis") or None
    if basis is not None and basis not in BASIS_KINDS:
        raise ValueError(f"basis is one of {', '.join(BASIS_KINDS)}.")
    return AuditQuery(
        case_reference=params.get("case_reference") or None,
        event_id=params.get("event_id") or None,
        child_key=child_keys.key(identifier) if identifier else None,
        authority=params.get("authority") or None,
        basis_kind=basis,
        action=params.get("action") or None,
        since=_moment(params, "since"),
        until=_moment(params, "until"),
        after=min(_number(params, "after", 0, minimum=0), LARGEST_SEQ),
        page_size=_number(params, "page_size", 50, minimum=1, maximum=MAX_PAGE),
    )


def _moment(params: Mapping[str, str | None], name: str) -> datetime | None:
    text = params.get(name)
    if not text:
        return None
    try:
        moment = rfc3339_moment(text)
    except ValueError as exc:
        raise ValueError(f"{name} is an ISO 8601 date or time.") from exc
    if moment.tzinfo is None:
        if "T" in text.upper() or " " in text:
            raise ValueError(f"{name} needs a time zone, e.g. 2026-11-24T09:00:00Z.")
        moment = moment.replace(tzinfo=UTC)  # a date: from midnight UTC
    if not has_utc_time(moment):
        raise ValueError(f"{name}: {OUT_OF_UTC_RANGE}")
    return moment


def _number(
    params: Mapping[str, object],
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int | None = None,
) -> int:
    """The whole number ``params`` give as ``name``, or ValueError saying what it may be: one
    out of range is refused, never quietly taken as the nearest, so a caller asking for more
    than a page holds is told so rather than left to think it has them all."""
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        number = int(text)
    except ValueError:
        number = minimum - 1
    if maximum is not None and not minimum <= number <= maximum:
        raise ValueError(f"{name} is a whole number from {minimum} to {maximum}.")
    if number < minimum:
        raise ValueError(f"{name} is a whole number, at least {minimum}.")
    return number
