"""The service layer for one inbound event: validate, decide, then seal (``service.sealing``)
and store.

Every entrypoint (the AMQP worker, the embedded queue, ``POST /api/v1/events``) hands raw bytes
to ``Relay.receive`` and gets back what happened; none of them repeats a step. Delivery is a
separate step (``service.delivery``) that starts only once the outcome is stored.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from marshmallow import ValidationError

from contracts.common import contract_errors
from contracts.event import CaseTransferEventSchema
from contracts.vocabulary import TransferState
from service.documents import GivenTwice, read_json
from service.domain.basis import dated_ahead, decide_basis, decision_day
from service.domain.child_keys import ChildKeys
from service.domain.model import decision_record, transfer_request
from service.domain.storable import unreadable, unstorable
from service.sealing import Sealer
from service.senders import Sender
from service.store.engine import StoreUnavailable
from service.store.outbox import Claimed, Lease
from service.store.reference import IntakeReference, ReferenceChanged
from service.store.store import (
    DUPLICATE,
    DUPLICATE_REASON,
    ID_CONFLICT,
    ID_CONFLICT_REASON,
    AuditEntry,
    NewTransfer,
    RejectedInput,
    Store,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Decisions made on a reference that changed before they were stored are made again; a batch
# meets a change at most once or twice in practice, but each try is a full decision.
REFERENCE_TRIES = 3


class Rejection(StrEnum):
    """Why input was refused; each maps to a dead-letter reason and an HTTP status."""

    OVERSIZED = "oversized"
    NOT_JSON = "not_json"
    CONTRACT = "contract_violation"
    UNKNOWN_AUTHORITY = "unknown_authority"
    FORGED_SENDER = "forged_sender"
    ID_CONFLICT = ID_CONFLICT


# Not a Rejection: the message may be good input that met a bug; the entrypoint sets it aside
# after trying it several times, and records why with ``Relay.record_processing_failed``.
PROCESSING_FAILED = "processing_failed"


@dataclass(frozen=True)
class Received:
    """What became of one inbound message."""

    event_id: str | None
    state: str | None = None
    duplicate: bool = False
    rejection: Rejection | None = None
    reason: str = ""
    errors: dict[str, Any] = field(default_factory=dict)
    # Its envelope's outbox item, if it was stored under the caller's lease for delivery.
    held: Claimed | None = None

    @property
    def needs_delivery(self) -> bool:
        return self.state == TransferState.SIGNED and not self.duplicate


@dataclass(frozen=True)
class _Decided:
    """One message's outcome, decided and ready to store."""

    stored: NewTransfer | RejectedInput
    received: Received

    def after_storing(self, repeat: str | None, held: Claimed | None = None) -> Received:
        """What became of it once stored: ``repeat`` says whether its event id already was."""
        event_id = self.received.event_id
        if repeat == DUPLICATE:
            return Received(event_id, duplicate=True, reason=DUPLICATE_REASON)
        if repeat == ID_CONFLICT:
            return Received(event_id, rejection=Rejection.ID_CONFLICT, reason=ID_CONFLICT_REASON)
        return replace(self.received, held=held)


class Relay:
    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        *,
        child_keys: ChildKeys,
        max_event_bytes: int,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._child_keys = child_keys
        self._max_event_bytes = max_event_bytes
        self._clock = clock
        self._schema = CaseTransferEventSchema()

    def receive(self, body: bytes, *, sender: Sender) -> Received:
        """Take one event through every step up to a stored outcome; never raises on bad input."""
        (outcome,) = self.receive_many([(body, sender)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def record_processing_failed(
        self, reason: str, sender: Sender, event_id: str | None = None
    ) -> None:
        """Audit a message set aside because processing it kept failing, as rejected input is,
        so that the audit and the rejection metrics count it, under the ``event_id`` its dead
        letter names (``readable_event_id``), so that either finds the other. Best effort: what
        kept failing may be the store, and the message itself is already kept where it was set
        aside."""
        try:
            self._store.record_intake(
                [RejectedInput(event_id, PROCESSING_FAILED, reason, sender.sent_by)]
            )
        except Exception:
            log.exception("could not audit a message set aside as %s", PROCESSING_FAILED)

    def readable_event_id(self, body: bytes) -> str | None:
        """The id in ``body``, if it is JSON within the size limit with a usable one that the
        store can hold: for the dead letter and the audit record of a message whose processing
        failed, which has no outcome to name it, as a rejection's does. One the store cannot
        hold (a NUL in it) would have both refused on every try, as intake refuses its event."""
        if len(body) > self._max_event_bytes:
            return None
        try:
            event_id = _event_id(read_json(body))
        except (UnicodeDecodeError, ValueError, RecursionError):  # GivenTwice is a ValueError
            return None
        return None if event_id is None or unstorable(event_id) else event_id

    def refuse_oversized(self, size: int | None, sender: Sender) -> Received:
        """Audit a body refused unread for its size (``None``: not declared), as one read and
        found too big is: an HTTP server stops reading at the limit, before ``receive``."""
        refused = self._oversized(size)
        rejection = RejectedInput(None, Rejection.OVERSIZED.value, refused.reason, sender.sent_by)
        self._store.record_intake([rejection])
        return refused

    def _oversized(self, size: int | None) -> Received:
        told = f"Event is {size} bytes" if size is not None else "Event is longer than the limit"
        reason = f"{told}; the limit is {self._max_event_bytes}."
        return Received(None, rejection=Rejection.OVERSIZED, reason=reason)

    def receive_many(
        self, messages: Sequence[tuple[bytes, Sender]], *, lease: Lease | None = None
    ) -> list[Received | Exception]:
        """Take a batch of events to stored outcomes in one transaction; one outcome per message.

        Checking, deciding and signing need no database, so they run per message against the
        authorities and ISPs kept in memory (``Store.intake_reference``); the outcomes are then
        stored together (one commit, one turn at the audit chain's head), and decided again if
        what they were decided on changed meanwhile. A message whose processing raises gets its
        exception as its outcome and no other message is held back by it: if the batch's
        transaction fails, other than for the database being unavailable, each message is
        stored on its own.
        ``StoreUnavailable`` propagates, with nothing stored. With a ``lease``, the envelopes
        that can be delivered at once are stored under it, each in its message's ``held``
        (but on the last try, which does not check the reference, and those decided on a day
        that has ended since: they are claimed instead).
        """
        for tries_left in reversed(range(REFERENCE_TRIES)):
            # The last try stores without the check, on a reference read moments before, and
            # holds nothing under the lease: an ISP suspended since then would not see its
            # envelopes to withdraw them, so they go through a claim, which does
            # (``service.store.ended_isps``).
            reference = self._store.intake_reference()
            outcomes = self._decide_all(messages, reference)
            decided = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, _Decided)]
            try:
                stored = self._store.record_intake(
                    [o.stored for _, o in decided],
                    lease=lease if tries_left else None,
                    reference=reference if tries_left else None,
                )
                break
            except ReferenceChanged:
                continue
            except StoreUnavailable:
                raise
            except Exception as exc:
                if len(decided) == 1:
                    outcomes[decided[0][0]] = exc
                else:
                    log.warning("storing a batch failed (%r); storing each message alone", exc)
                    for i, outcome in decided:
                        outcomes[i] = self._store_alone(outcome)
                return outcomes  # type: ignore[return-value]
        held = self._held_to_hand_over(stored.held, [o.stored for _, o in decided])
        for (i, outcome), repeat in zip(decided, stored.repeats, strict=True):
            outcomes[i] = outcome.after_storing(repeat, held.get(outcome.received.event_id))
        return outcomes  # type: ignore[return-value]

    def _held_to_hand_over(
        self, held: Sequence[Claimed], stored: Sequence[NewTransfer | RejectedInput]
    ) -> dict[str, Claimed]:
        """The envelopes stored under the lease, by event id, to deliver without a claim; but
        those decided on a London day that has ended since are given back, for a claim to take.
        An ISP may have expired at midnight, and the new day's first claim withdrawn what waited
        under it before they were stored: the claim that takes them looks at their ISP
        (``service.store.ended_isps``), as it does for a batch stored unheld."""
        if not held:
            return {}
        today = decision_day(self._clock())
        decided_on = {
            new.event["id"]: decision_day(new.received_at)
            for new in stored
            if isinstance(new, NewTransfer)
        }
        late = [c for c in held if decided_on[c.envelope.event_id] < today]
        if late:
            try:
                self._store.outbox.record([], late)
            except Exception:
                log.exception(
                    "envelopes decided before midnight not given back; their leases will run out",
                    extra={"event_id": ",".join(c.envelope.event_id for c in late)},
                )
        return {c.envelope.event_id: c for c in held if decided_on[c.envelope.event_id] >= today}

    def _decide_all(
        self, messages: Sequence[tuple[bytes, Sender]], reference: IntakeReference
    ) -> list[Received | Exception | _Decided]:
        outcomes: list[Received | Exception | _Decided] = []
        for body, sender in messages:
            try:
                outcomes.append(self._decide(body, sender, reference))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _store_alone(self, outcome: _Decided) -> Received | Exception:
        try:
            stored = self._store.record_intake([outcome.stored])
        except StoreUnavailable:
            raise
        except Exception as exc:
            return exc
        return outcome.after_storing(stored.repeats[0])

    def _decide(self, body: bytes, sender: Sender, reference: IntakeReference) -> _Decided:
        """What to store for one message: its rejection, or its transfer; no database needed."""
        names = reference.authorities
        received_at = self._clock()
        parsed = self._parse(body, reference, sender, received_at)
        if isinstance(parsed, Received):
            rejection = RejectedInput(
                parsed.event_id, parsed.rejection.value, parsed.reason, sender.sent_by
            )
            return _Decided(rejection, parsed)
        event = parsed
        decision = decide_basis(
            transfer_request(event), reference.isp_terms, decision_day(received_at)
        )
        concluded = self._sealer.conclude(event, decision, received_at, names)
        arrival = AuditEntry("received", _received_detail(event, sender, self._child_keys))
        audit = [arrival, *concluded.audit]
        new = NewTransfer(
            concluded.kept,
            concluded.state,
            decision_record(decision),
            received_at,
            concluded.envelope,
            audit,
            sender.sent_by,
        )
        return _Decided(new, Received(event["id"], state=concluded.state, reason=decision.reason))

    def _parse(
        self, body: bytes, reference: IntakeReference, sender: Sender, received_at: datetime
    ) -> dict[str, Any] | Received:
        if len(body) > self._max_event_bytes:
            return self._oversized(len(body))
        try:
            document = read_json(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Received(None, rejection=Rejection.NOT_JSON, reason=f"Not JSON: {exc}")
        except GivenTwice as exc:
            return Received(
                None, rejection=Rejection.NOT_JSON, reason=f"Not JSON we accept: {_twice(exc)}"
            )
        except (ValueError, RecursionError) as exc:
            return Received(
                None, rejection=Rejection.NOT_JSON, reason=f"Not JSON we accept: {unreadable(exc)}"
            )
        why_unstorable = unstorable(document, parsed_from=body)
        if why_unstorable:
            return Received(
                None, rejection=Rejection.NOT_JSON, reason=f"Not JSON we accept: {why_unstorable}"
            )
        event_id = _event_id(document)
        try:
            self._schema.load(document)
        except ValidationError as exc:
            return _violation(event_id, contract_errors(exc))
        data = document["data"]
        judgement = data["sharing"].get("judgement")
        ahead = judgement and dated_ahead(judgement["decided_at"], received_at)
        if ahead:
            return _violation(
                event_id, {"data": {"sharing": {"judgement": {"decided_at": [ahead]}}}}
            )
        unknown = [
            code
            for code in (data["from_authority"], data["to_authority"])
            if code not in reference.authorities
        ]
        if unknown:
            return Received(
                event_id,
                rejection=Rejection.UNKNOWN_AUTHORITY,
                reason=f"Unknown authority: {', '.join(unknown)}.",
            )
        if not sender.may_send_for(data["from_authority"], reference):
            return Received(
                event_id,
                rejection=Rejection.FORGED_SENDER,
                reason=f"{sender.description} may not send for {data['from_authority']}"
                f" (it sends for {sender.sends_for(reference) or 'no authority'}).",
            )
        return document


def _event_id(document: Any) -> str | None:
    """The id of a rejected event, if it has a usable one, so its rejection can be found."""
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        return document["id"][:128] or None
    return None


def _violation(event_id: str | None, errors: dict[str, Any]) -> Received:
    return Received(
        event_id,
        rejection=Rejection.CONTRACT,
        reason=f"Does not match the case-transfer contract: {_summary(errors)}",
        errors=errors,
    )


def _summary(messages: Any, limit: int = 500) -> str:
    """The errors for the reason, which is audited for good and logged: a key the event chose
    (an unknown field) is quoted only if it could be a field's name, not case data."""
    text = json.dumps(_field_like_keys(messages), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


FIELD_LIKE = re.compile(r"(?:[a-z_][a-z0-9_]{0,63}|[0-9]{1,4})\Z")  # a name, or a list index
UNQUOTED_FIELD = "(an unknown field, its name not quoted)"


# Keys a refusal for keys given twice names; it counts the rest. Listing every one made the
# reason of an event at the size limit some 300 KB: too long for its dead letter's frame.
KEYS_NAMED = 5


def _twice(exc: GivenTwice) -> str:
    """Why an event giving a key twice is refused: read as the last, the relay could act on
    another recipient or judgement than its sender's system showed. The keys are quoted only
    if they could be fields' names, as in ``_summary``, and only the first few."""
    names = [
        repr(key) if FIELD_LIKE.match(key) else "(a key not quoted)"
        for key in exc.keys[:KEYS_NAMED]
    ]
    more = f" and {len(exc.keys) - KEYS_NAMED} more" if len(exc.keys) > KEYS_NAMED else ""
    return f"{', '.join(names)}{more} given twice in one object."


def _field_like_keys(messages: Any) -> Any:
    if not isinstance(messages, dict):
        return messages
    kept: dict[str, Any] = {}
    for key, value in messages.items():
        name = str(key) if FIELD_LIKE.match(str(key)) else UNQUOTED_FIELD
        kept.setdefault(name, _field_like_keys(value))
    return kept


def _received_detail(
    event: dict[str, Any], sender: Sender, child_keys: ChildKeys
) -> dict[str, Any]:
    """The arrival, who handed it in, and findable by child through keyed hashes of the
    child's identifiers only."""
    data = event["data"]
    return {
        "source": event["source"],
        "sent_by": dict(sender.sent_by),
        "case_reference": event["subject"],
        "from_authority": data["from_authority"],
        "to_authority": data["to_authority"],
        "mode": data["sharing"]["mode"],
        "purpose": data["sharing"]["purpose"],
        "categories_present": sorted(data["case"]),
        "child_keys": child_keys.of_case(data["case"]["child_identity"]),
    }
