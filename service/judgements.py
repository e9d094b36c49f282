"""A practitioner's judgement for a parked transfer: recorded, decided on, and carried out.

A transfer with neither an applicable ISP nor a judgement waits (``awaiting_judgement``) until a
practitioner of the SENDING authority decides: it is that authority's information, and its
decision to share or not. The judgement is attached to the stored event exactly as if it had
come with it, and the same rules (``decide_basis``) and the same sealing (``Sealer.conclude``) as
at intake decide what happens, so a judgement recorded later is worth no more and no less than
one sent with the event. The API and the CLI both record judgements through ``Judgements``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from marshmallow import ValidationError

from contracts.common import contract_errors
from contracts.judgement import JudgementSchema
from contracts.vocabulary import TransferState
from service.access import Principal, Role
from service.domain.basis import dated_ahead, decide_basis, decision_day
from service.domain.model import Outcome, judged_decision, transfer_request
from service.domain.storable import unstorable
from service.relay import Clock
from service.sealing import Sealer, judgement_summary
from service.store.store import AuditEntry, Store
from service.store.transfers import Settlement, ToJudge


class Refusal(StrEnum):
    """Why a judgement was not recorded; the API maps each to an HTTP status."""

    UNKNOWN_TRANSFER = "unknown_transfer"
    NOT_PERMITTED = "not_permitted"
    NOT_PARKED = "not_parked"
    INVALID = "invalid_judgement"
    NO_BASIS = "no_basis"


@dataclass
class JudgementRefused(Exception):
    refusal: Refusal
    reason: str
    errors: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


def may_decide(by: Principal, from_authority: str) -> bool:
    """Only a practitioner of the sending authority (or a global admin) decides its transfers."""
    return by.is_global_admin or (by.role is Role.PRACTITIONER and by.authority == from_authority)


class Judgements:
    def __init__(self, store: Store, sealer: Sealer, clock: Clock) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._on_signed: list[Callable[[], None]] = []

    def wake_on_signed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a judgement puts an envelope in the outbox."""
        self._on_signed.append(callback)

    def record(self, event_id: str, document: Any, *, by: Principal) -> str:
        """Record ``document`` as the judgement for a parked transfer; return its new state.

        Raises ``JudgementRefused`` saying why nothing changed. A caller who may decide and is
        refused is audited here, on the transfer; one who may not decide is refused before the
        judgement is even read, and the API audits that as it does every 403.
        """
        transfer = self._store.transfers.to_judge(event_id)
        if transfer is None:
            raise JudgementRefused(
                Refusal.UNKNOWN_TRANSFER, f"No transfer with event id {event_id!r}."
            )
        if not may_decide(by, transfer.from_authority):
            raise JudgementRefused(
                Refusal.NOT_PERMITTED,
                f"Only a practitioner of the sending authority, {transfer.from_authority}, may "
                f"record a judgement for this transfer; this is a {by.role.value} of "
                f"{by.authority or 'no authority'}.",
            )
        if transfer.state != TransferState.AWAITING_JUDGEMENT:
            transfer = self._parked_if_its_isp_ended(event_id)
        if transfer.state != TransferState.AWAITING_JUDGEMENT:
            self._refuse(event_id, by, Refusal.NOT_PARKED, _not_parked(transfer.state))
        judgement = self._validated(event_id, document, by)
        event = copy.deepcopy(transfer.event)
        event["data"]["sharing"]["judgement"] = judgement
        now = self._clock()
        decision = decide_basis(
            transfer_request(event), self._store.isps.terms(), decision_day(now)
        )
        if decision.outcome is Outcome.AWAIT_JUDGEMENT:
            reason = f"This judgement gives no basis to share: {decision.reason}"
            self._refuse(event_id, by, Refusal.NO_BASIS, reason)
        concluded = self._sealer.conclude(
            event,
            decision,
            now,
            self._store.authorities(),
            withheld_before=transfer.decision.get("withheld_before", ()),
        )
        recorded = AuditEntry(
            "judgement_recorded", {"by": by.describe(), **judgement_summary(judgement)}
        )
        settled = self._store.transfers.settle(
            event_id,
            Settlement(
                event=concluded.kept,
                state=concluded.state,
                decision=judged_decision(decision, transfer.decision),
                envelope=concluded.envelope,
                audit=[recorded, *concluded.audit],
                at=now,
            ),
        )
        if not settled:
            state = self._store.transfers.to_judge(event_id).state
            self._refuse(event_id, by, Refusal.NOT_PARKED, _not_parked(state))
        if concluded.envelope is not None:
            for callback in self._on_signed:
                callback()
        return concluded.state

    def _parked_if_its_isp_ended(self, event_id: str) -> ToJudge:
        """The transfer once what is still to be sent under ISPs ended by now is withdrawn, as
        the outbox's next claim would withdraw it: one whose ISP expired overnight, before any
        claim that day (the web app runs no delivery loop), then awaits this judgement rather
        than its practitioner being told its basis is decided."""
        self._store.outbox.withdraw_ended(self._clock())
        return self._store.transfers.to_judge(event_id)

    def _validated(self, event_id: str, document: Any, by: Principal) -> dict[str, Any]:
        """The judgement in the contract's own JSON form, whatever it was read from (a YAML
        file's dates are dates); or refused, field by field."""
        schema = JudgementSchema()
        try:
            judgement = schema.dump(schema.load(document))
        except ValidationError as exc:
            self._refuse(
                event_id,
                by,
                Refusal.INVALID,
                "Does not match the practitioner-judgement contract.",
                contract_errors(exc),
            )
        why = unstorable(judgement)
        if why:
            self._refuse(event_id, by, Refusal.INVALID, f"Not a judgement we can store: {why}")
        ahead = dated_ahead(judgement["decided_at"], self._clock())
        if ahead:
            self._refuse(
                event_id,
                by,
                Refusal.INVALID,
                "Does not match the practitioner-judgement contract.",
                {"decided_at": [ahead]},
            )
        return judgement

    def _refuse(
        self,
        event_id: str,
        by: Principal,
        refusal: Refusal,
        reason: str,
        errors: dict[str, Any] | None = None,
    ) -> None:
        """Audit, on the transfer, a judgement that was not recorded, then raise why."""
        self._store.record_audit(
            event_id,
            "judgement_refused",
            {"by": by.describe(), "refusal": refusal.value, "reason": reason},
        )
        raise JudgementRefused(refusal, reason, errors or {})


def _not_parked(state: str) -> str:
    return f"The transfer is {state}, not awaiting a judgement; its basis is already decided."
