"""Carrying out a basis decision: minimise the case, sign the envelope, say so in the audit.

Intake (``service.relay``) and a practitioner's later judgement (``service.judgements``) both
end here, so a transfer is minimised, signed and audited the same way whenever its basis was
decided.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.vocabulary import TransferState
from service.domain.envelope import Organisation, build_envelope
from service.domain.judgement_digests import JUDGEMENT_SET_ASIDE, judgement_digest
from service.domain.minimise import Minimised, also_withheld, minimise, with_case
from service.domain.model import SET_ASIDE, BasisDecision, Outcome, decision_record
from service.signing import KeyRing
from service.store.store import AuditEntry, SignedEnvelope

STATE_BY_OUTCOME = {
    Outcome.SHARE_UNDER_ISP: TransferState.SIGNED,
    Outcome.SHARE_UNDER_JUDGEMENT: TransferState.SIGNED,
    Outcome.AWAIT_JUDGEMENT: TransferState.AWAITING_JUDGEMENT,
    Outcome.WITHHOLD: TransferState.WITHHELD,
}


@dataclass(frozen=True)
class Concluded:
    """A basis decision carried out: the transfer's state, its signed envelope, their audit,
    and the event as the relay keeps it (``kept``): whole while it waits for a judgement to
    choose from it, then no more than was forwarded."""

    state: str
    envelope: SignedEnvelope | None
    audit: list[AuditEntry]
    kept: dict[str, Any]


class Sealer:
    """Holds the signing keys, so that nothing else that decides needs them."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    def conclude(
        self,
        event: dict[str, Any],
        decision: BasisDecision,
        now: datetime,
        names: dict[str, str],
        withheld_before: Collection[str] = (),
    ) -> Concluded:
        """What ``decision`` comes to for ``event``: its state, envelope if shared, and audit;
        ``names`` are the authorities' names by code, for the envelope's parties;
        ``withheld_before``, categories a withdrawn envelope withheld, gone from ``event``."""
        state = STATE_BY_OUTCOME[decision.outcome]
        audit = [AuditEntry("basis_decided", _decision_summary(decision))]
        if decision.set_aside is not None:
            set_aside = judgement_summary(decision.set_aside.record)
            audit.append(AuditEntry(JUDGEMENT_SET_ASIDE, {**set_aside, "reason": decision.reason}))
        if not decision.shares:
            kept = event if decision.outcome is Outcome.AWAIT_JUDGEMENT else with_case(event, {})
            audit.append(AuditEntry(state, {"reason": decision.reason}))
            return Concluded(state, None, audit, kept)
        minimised = minimise(event["data"]["case"], decision.permitted_categories)
        if withheld_before:
            minimised = also_withheld(minimised, withheld_before)
        envelope, sealed = self._seal(event, decision, minimised, now, names)
        return Concluded(state, envelope, audit + sealed, with_case(event, minimised.case))

    def _seal(
        self,
        event: dict[str, Any],
        decision: BasisDecision,
        minimised: Minimised,
        now: datetime,
        names: dict[str, str],
    ) -> tuple[SignedEnvelope, list[AuditEntry]]:
        data = event["data"]
        envelope_id = str(uuid.uuid4())
        payload = build_envelope(
            envelope_id=envelope_id,
            issued_at=now,
            event=event,
            decision=decision,
            minimised=minimised,
            sender=Organisation(data["from_authority"], names[data["from_authority"]]),
            recipient=Organisation(data["to_authority"], names[data["to_authority"]]),
        )
        jws = self._keyring.sign(payload)
        sha256 = hashlib.sha256(jws.encode()).hexdigest()
        signed = SignedEnvelope(envelope_id, self._keyring.kid, jws, sha256, now)
        return signed, [
            AuditEntry(
                "minimised",
                {"shared": list(minimised.shared), "withheld": list(minimised.withheld)},
            ),
            AuditEntry(
                "signed", {"envelope_id": envelope_id, "kid": self._keyring.kid, "sha256": sha256}
            ),
        ]


def _decision_summary(decision: BasisDecision) -> dict[str, Any]:
    """The decision for the audit: who decided and on what basis, without free-text prose; a
    judgement set aside has a record of its own (``JUDGEMENT_SET_ASIDE``), which its recipient
    does not see: the judgement may name others."""
    summary = decision_record(decision)
    summary.pop(SET_ASIDE, None)
    judgement = summary.pop("judgement", None)
    if judgement is not None:
        summary["judgement"] = judgement_summary(judgement)
    return summary


def judgement_summary(judgement: dict[str, Any]) -> dict[str, Any]:
    """A judgement record for the audit: who decided what, when, for what purpose, with whom
    and on what basis (golden rule 7); no prose, but the digest of the whole record, which ties
    the prose kept with the transfer to the chain (``service.domain.judgement_digests``)."""
    return {
        "practitioner": judgement["practitioner"],
        "decided_at": judgement["decided_at"],
        "decision": judgement["decision"],
        "purpose": judgement["purpose"],
        "consent": judgement["consent"]["status"],
        "lawful_basis": judgement["lawful_basis"],
        "data_categories": judgement["data_categories"],
        "recipients": judgement["recipients"],
        "sha256": judgement_digest(judgement),
    }
