"""Delivers claimed outbox items, a group at a time, through their recipients' adapters, and
records what happened. An admin's test delivery (``service.authorities``) is tried the same way.

Adapters are built once per authority and configuration and reused, so a connection to a
borough's broker or HTTPS endpoint is not reopened for every envelope. A broken configuration or
an adapter that raises is a failed attempt with its reason, retried under the retry policy; it
never stops the relay.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import takewhile

from adapters.base import Adapter, DeliveryFailed, GroupAdapter, OutboundEnvelope, Receipt
from adapters.registry import AdapterConfigError, build_adapter
from service import retry_settings
from service.combined_records import CombinedRecords
from service.domain.retry import RetryPolicy, after_failure, outage_waits
from service.domain.storable import storable_text
from service.logs import own_log_context, set_event_id, where_it_failed
from service.receipts import check_receipt
from service.secrets import SecretsKeyError
from service.store.engine import StoreUnavailable
from service.store.outbox import Attempt, Claimed, Settled
from service.store.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class TriedDelivery:
    """One call of an adapter: its receipt if it delivered, else whether to retry and why."""

    receipt: Receipt | None
    retryable: bool
    detail: str
    duration_ms: int


def try_delivery(
    deliver: Callable[[], Receipt], envelope: OutboundEnvelope, adapter_type: str | None
) -> TriedDelivery:
    """Call ``deliver`` once, through an adapter of ``adapter_type`` (None: there is none to
    use), and say, in words fit for the audit, how it went.

    Outbox deliveries and an admin's test delivery both come through here, so the two tell the
    same story of the same failure. A configuration that cannot be used is retried: an admin
    can mend it, and the transfer should then go. An adapter's bug never stops the relay.
    """
    (tried,) = try_delivering(lambda: [deliver()], [envelope], adapter_type)
    return tried


def try_delivering(
    deliver: Callable[[], Sequence[Receipt | DeliveryFailed]],
    envelopes: Sequence[OutboundEnvelope],
    adapter_type: str | None,
) -> list[TriedDelivery]:
    """Call ``deliver`` once for ``envelopes``, delivered together, and say how it went for
    each (``try_delivery``). What makes the call raise fails every envelope alike; each takes
    as long as the call, which ended for all of them at once."""
    started = time.monotonic()
    try:
        outcomes: Sequence[Receipt | Exception] = deliver()
        if len(outcomes) != len(envelopes):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(envelopes)} envelopes")
    except Exception as exc:
        if not isinstance(exc, AdapterConfigError | SecretsKeyError | DeliveryFailed):
            # What and where, not its words: an adapter's error may quote what it was given,
            # the envelope or its secrets (requests quotes a header it refuses, token and all).
            event_ids = ",".join(envelope.event_id for envelope in envelopes)
            log.error("adapter raised %s", where_it_failed(exc), extra={"event_id": event_ids})
        outcomes = [exc] * len(envelopes)
    duration_ms = round((time.monotonic() - started) * 1000)
    return [_tried(outcome, duration_ms, adapter_type) for outcome in outcomes]


def _tried(outcome: object, duration_ms: int, adapter_type: str | None) -> TriedDelivery:
    """The outcome as recorded. An adapter's words may quote its recipient (an HTTP reason
    phrase, a broker's reply, a receipt), so they are made storable: a NUL character in them
    would otherwise sink the record of the whole group, to be sent again and again. So would an
    outcome that breaks the adapter's contract (bytes for text, say), which is a failed attempt
    instead, retried as an adapter that raised is."""
    adapter = "the adapter" if adapter_type is None else f"the {adapter_type!r} adapter"
    broken = _broken_contract(outcome)
    if broken is not None:
        return TriedDelivery(None, True, f"Adapter error: {adapter} {broken}.", duration_ms)
    if isinstance(outcome, Receipt):
        signed = None if outcome.signed is None else storable_text(outcome.signed)
        receipt = Receipt(storable_text(outcome.detail), signed=signed)
        return TriedDelivery(receipt, False, receipt.detail, duration_ms)
    if isinstance(outcome, AdapterConfigError | SecretsKeyError):
        errors = getattr(outcome, "errors", None)  # which setting is wrong, never its value
        detail = f"Adapter not usable: {outcome}" + (f" {json.dumps(errors)}" if errors else "")
        return TriedDelivery(None, True, storable_text(detail), duration_ms)
    if isinstance(outcome, DeliveryFailed):
        return TriedDelivery(None, outcome.retryable, storable_text(outcome.reason), duration_ms)
    return TriedDelivery(
        None, True, f"Adapter error: {adapter} raised {type(outcome).__name__}.", duration_ms
    )


def _broken_contract(outcome: object) -> str | None:
    """How an adapter's outcome for one envelope breaks the port's types (``adapters.base``),
    if it does; an exception it raised keeps to it."""
    if isinstance(outcome, Receipt):
        if not isinstance(outcome.detail, str):
            return f"returned a Receipt whose detail is {_type_of(outcome.detail)}, not str"
        if not isinstance(outcome.signed, str | None):
            return f"returned a Receipt whose signed is {_type_of(outcome.signed)}, not str"
        return None
    if isinstance(outcome, DeliveryFailed):
        if not isinstance(outcome.reason, str):
            return f"failed with a reason that is {_type_of(outcome.reason)}, not str"
        if not isinstance(outcome.retryable, bool):
            return f"failed with retryable {_type_of(outcome.retryable)}, not bool"
        return None
    if isinstance(outcome, Exception):
        return None
    return f"returned {_type_of(outcome)}, not a Receipt"


def _type_of(value: object) -> str:
    return "None" if value is None else type(value).__name__


def checked_receipt(store: Store, signed: str, envelope: OutboundEnvelope) -> dict:
    """A signed receipt's audit detail; checking it must not stop the delivery being recorded."""
    try:
        return check_receipt(signed, store.authority_keys(envelope.to_authority), envelope)
    except Exception as exc:
        log.exception("receipt not checked", extra={"event_id": envelope.event_id})
        return {"verified": False, "reason": f"Not checked: {type(exc).__name__}"}


# A delivery that will be tried again is worth a look; one given up on needs an admin to send
# it again (POST .../redeliver) once the recipient is fixed.
LOG_LEVELS = {"delivered": logging.INFO, "retry": logging.WARNING, "failed": logging.ERROR}


def _result(outcome: Settled) -> str:
    if outcome.attempt.succeeded:
        return "delivered"
    return "retry" if outcome.retry_at is not None else "failed"


def _together(
    items: Sequence[Claimed], adapter: tuple[str, Adapter] | Exception
) -> Sequence[Claimed]:
    """What the next attempt takes: the first item, with those after it for the same recipient
    if its adapter delivers several at once."""
    if isinstance(adapter, Exception) or not isinstance(adapter[1], GroupAdapter):
        return items[:1]
    recipient = items[0].envelope.to_authority
    return list(takewhile(lambda item: item.envelope.to_authority == recipient, items))


def _unreceipted(outcome: Settled, exc: Exception) -> Settled:
    """``outcome``, a delivery whose record the database refused (``exc``), as a delivery
    without what the refusal may have been about (its receipt and the receipt's check), saying
    so: the recipient has the envelope, so it stays delivered."""
    detail = f"{outcome.attempt.detail[:300]}; recorded without its receipt, as the database "
    attempt = replace(outcome.attempt, receipt=None, detail=f"{detail}refused it ({_why(exc)})")
    return Settled(outcome.claimed, attempt)


def _refused(outcome: Settled, exc: Exception) -> Settled:
    """``outcome``, whose record the database refused (``exc``), as an attempt failed for good
    with why: without what the refusal may have been about (its receipt, the receipt's check,
    its retry), and saying whether the envelope arrived, for it may have."""
    why = _why(exc)
    was = "Delivered" if outcome.attempt.succeeded else "Failed"
    detail = f"{was} ({outcome.attempt.detail[:300]}), but the database refused to record it"
    attempt = replace(
        outcome.attempt, succeeded=False, retryable=False, receipt=None, detail=f"{detail} ({why})"
    )
    gave_up = f"the database refused to record its outcome ({why}); redeliver once that is fixed"
    return Settled(outcome.claimed, attempt, gave_up=gave_up)


def _why(exc: Exception) -> str:
    """What the database said in refusing a record, in a line: not the failing row's values."""
    said = str(getattr(exc, "orig", None) or exc).splitlines()
    return storable_text(type(exc).__name__ + (f": {said[0][:300]}" if said else ""))


def _attempt_of(tried: TriedDelivery, attempted_at: datetime, adapter_type: str | None) -> Attempt:
    receipt = tried.receipt
    return Attempt(
        attempted_at=attempted_at,
        adapter_type=adapter_type,
        succeeded=receipt is not None,
        retryable=tried.retryable,
        detail=tried.detail,
        duration_ms=tried.duration_ms,
        receipt=receipt.signed if receipt is not None else None,
    )


class AdapterCache:
    """One live adapter per authority, rebuilt when its stored configuration changes.

    A replaced adapter may still be in another delivery thread's hands: it is closed in a
    thread of its own, as closing waits for the group in flight on it (the amqp adapter's, up
    to its whole attempt), which must hold up neither the thread that replaced it nor, through
    the cache's lock, every other recipient's deliveries."""

    def __init__(self) -> None:
        self._adapters: dict[str, tuple[datetime, str, Adapter]] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, authority: str) -> tuple[str, Adapter]:
        """The authority's adapter as it is set now; its secrets are decrypted only when it
        was changed since it was built.

        Each delivery group asks as it starts, however long ago its envelopes were claimed or
        handed over: an admin who moves a recipient's endpoint, or removes its adapter, has no
        envelope sent the old way after that. While the database cannot say, the adapter
        already built is used, as its deliveries will be recorded once it is back."""
        try:
            updated_at = store.adapter_updated_at(authority)
        except StoreUnavailable:
            with self._lock:
                cached = self._adapters.get(authority)
            if cached is None:
                raise
            return cached[1], cached[2]
        replaced = None
        try:
            with self._lock:
                cached = self._adapters.get(authority)
                if cached is not None and cached[0] == updated_at:
                    return cached[1], cached[2]
                # Read again: changed once more since, it is built as it stands, and a thread
                # that read before another's change does not replace the adapter built since.
                setting = store.organisations.adapter_setting(authority)
                if cached is not None and setting is not None and cached[0] == setting.updated_at:
                    return cached[1], cached[2]
                if cached is not None:
                    replaced = self._adapters.pop(authority)[2]
                if setting is None:
                    raise AdapterConfigError(f"No adapter is configured for {authority}.")
                adapter = build_adapter(setting.adapter_type, setting.settings, setting.secrets)
                self._adapters[authority] = (setting.updated_at, setting.adapter_type, adapter)
                return setting.adapter_type, adapter
        finally:
            if replaced is not None:
                threading.Thread(target=replaced.close, name="close-adapter", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            for _, _, adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()


@dataclass(frozen=True)
class DeliveredGroup:
    results: list[str]  # delivered, retry or failed, for each item attempted
    waiting_behind: bool  # envelopes of the same recipients and cases are still waiting


class Deliverer:
    def __init__(
        self,
        store: Store,
        adapters: AdapterCache,
        *,
        retry: RetryPolicy,
        lease: timedelta,
        clock: Clock,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._records = CombinedRecords(store.outbox.record)
        self._adapters = adapters
        self._retry = retry
        self.lease = lease
        self._clock = clock
        self._jitter = jitter

    def deliver(self, claimed: Claimed) -> str:
        """Try once; record the attempt and what follows. Returns delivered, retry or failed."""
        (outcome,) = self.deliver_group([claimed]).results
        return outcome

    @own_log_context
    def deliver_group(
        self,
        group: Sequence[Claimed],
        deadline: float | None = None,
        stopping: threading.Event | None = None,
    ) -> DeliveredGroup:
        """Try each claimed item in turn; record every attempt and what follows in one
        transaction (with other groups finishing at the same time: ``CombinedRecords``), once
        the database takes it (``_record``), unless ``stopping`` is set meanwhile.
        Returns delivered, retry or failed for each item attempted, and whether envelopes may
        be waiting behind the group's (so a claim could now find them).

        A recipient whose adapter delivers several at once (``GroupAdapter``) gets the group's
        envelopes for it in one attempt; others get them one at a time. A failed attempt is
        retried on its own schedule and does not stop the group, so other cases go ahead. The
        group stops before any attempt that might not end within the lease (``deadline``, by
        ``time.monotonic()``), as after an attempt that hung until its timeout; the items it did
        not attempt are given back, due again at once.
        """
        settled: list[Settled] = []
        adapters: dict[str, tuple[str, Adapter]] = {}
        while len(settled) < len(group):
            if deadline is not None and time.monotonic() > deadline:
                break
            waiting = group[len(settled) :]
            adapter = self._adapter(waiting[0], adapters)
            settled += self._attempt(_together(waiting, adapter), adapter)
        settled, waiting_behind = self._record(
            settled, group[len(settled) :], stopping or threading.Event()
        )
        outcomes = []
        for outcome in settled:
            result = _result(outcome)
            log.log(
                LOG_LEVELS[result],
                "delivery %s: %s",
                result,
                outcome.attempt.detail,
                extra={
                    "event_id": outcome.claimed.envelope.event_id,
                    "adapter_type": outcome.attempt.adapter_type,
                },
            )
            outcomes.append(result)
        return DeliveredGroup(outcomes, waiting_behind)

    def _record(
        self, settled: list[Settled], unattempted: Sequence[Claimed], stopping: threading.Event
    ) -> tuple[list[Settled], bool]:
        """Record a group's outcomes (``_stored``); return them as recorded, and whether
        envelopes may wait behind them.

        A record the database refuses other than for an outage may be refused every time (a
        constraint, a value a column cannot hold): left unrecorded, the group's envelopes would
        be sent again each time their leases ran out, forever, with nothing on the record to
        say why. So each outcome is then recorded alone, and one refused alone is recorded
        as the most of it the database takes (``_recorded_instead``): the group's other
        envelopes are not failed with it."""
        try:
            return settled, self._stored(settled, unattempted, stopping)
        except StoreUnavailable:
            raise
        except Exception:
            if not settled:
                raise
            log.exception(
                "delivery outcomes refused by the database; recording each alone",
                extra={"event_id": ",".join(s.claimed.envelope.event_id for s in settled)},
            )
        waiting_behind = bool(unattempted) and self._stored([], unattempted, stopping)
        recorded = []
        for outcome in settled:
            try:
                waiting_behind |= self._stored([outcome], (), stopping)
            except StoreUnavailable:
                raise
            except Exception as exc:
                outcome, behind = self._recorded_instead(outcome, exc, stopping)
                waiting_behind |= behind
            recorded.append(outcome)
        return recorded, waiting_behind

    def _recorded_instead(
        self, outcome: Settled, exc: Exception, stopping: threading.Event
    ) -> tuple[Settled, bool]:
        """Record ``outcome``, which the database refused alone (``exc``), as the most of it
        the database takes; return it as recorded, and whether envelopes may wait behind it.

        A delivery is recorded without its receipt (``_unreceipted``) if the database takes
        that: its recipient has the envelope, and as a failed transfer a suspension or an expiry
        would park it, and a redelivery send it again. Anything else, or a delivery refused
        even so, is an attempt failed for good (``_refused``)."""
        if outcome.attempt.succeeded:
            unreceipted = _unreceipted(outcome, exc)
            try:
                return unreceipted, self._stored([unreceipted], (), stopping)
            except StoreUnavailable:
                raise
            except Exception as again:
                exc = again
        failed = _refused(outcome, exc)
        return failed, self._stored([failed], (), stopping)

    def _stored(
        self, settled: list[Settled], unattempted: Sequence[Claimed], stopping: threading.Event
    ) -> bool:
        """Store outcomes, trying again while the database is unavailable, until they are
        stored or ``stopping`` is set. Their envelopes have gone: a record dropped would have
        them sent again once their leases ran out, or, were their ISP suspended or expired
        meanwhile, the transfers parked (and perhaps withheld) though their recipient has them.
        A record that comes after its leases is taken as any late one is (``Outbox.record``)."""
        for wait in outage_waits():
            try:
                return self._records.record(settled, unattempted)
            except StoreUnavailable as exc:
                if stopping.is_set():
                    raise
                log.warning(
                    "delivery outcomes not recorded, trying again in %.1fs: %s",
                    wait,
                    exc,
                    extra={"event_id": ",".join(s.claimed.envelope.event_id for s in settled)},
                )
                if stopping.wait(wait):
                    raise

    def _adapter(
        self, claimed: Claimed, adapters: dict[str, tuple[str, Adapter]]
    ) -> tuple[str, Adapter] | Exception:
        """The item's recipient's adapter type and adapter, or why there is none to use (the
        attempt then fails saying so); ``adapters`` caches the group's."""
        recipient = claimed.envelope.to_authority
        if recipient not in adapters:
            try:
                adapters[recipient] = self._adapters.get(self._store, recipient)
            except Exception as exc:
                return exc
        return adapters[recipient]

    def _attempt(
        self, items: Sequence[Claimed], adapter: tuple[str, Adapter] | Exception
    ) -> list[Settled]:
        """One try at delivering ``items`` (one, or several for a ``GroupAdapter``), and what
        is to follow for each."""
        envelopes = [claimed.envelope for claimed in items]
        set_event_id(",".join(envelope.event_id for envelope in envelopes))
        attempted_at = self._clock()
        adapter_type = None if isinstance(adapter, Exception) else adapter[0]

        def deliver() -> Sequence[Receipt | DeliveryFailed]:
            if isinstance(adapter, Exception):
                raise adapter
            if isinstance(adapter[1], GroupAdapter):
                return adapter[1].deliver_group(envelopes)
            return [adapter[1].deliver(envelopes[0])]

        tried = try_delivering(deliver, envelopes, adapter_type)
        return [
            self._settle(claimed, _attempt_of(one, attempted_at, adapter_type))
            for claimed, one in zip(items, tried, strict=True)
        ]

    def _settle(self, claimed: Claimed, attempt: Attempt) -> Settled:
        """What is to follow an attempt at ``claimed``: delivered (its signed receipt, if it
        had one, checked), due again, or given up."""
        if attempt.succeeded:
            if attempt.receipt is None:
                return Settled(claimed, attempt)
            checked = checked_receipt(self._store, attempt.receipt, claimed.envelope)
            return Settled(claimed, attempt, receipt=checked)
        next_step = after_failure(
            retry_settings.policy(self._retry, claimed.retry),
            attempts=claimed.attempts_before + 1,
            enqueued_at=claimed.enqueued_at,
            now=self._clock(),
            retryable=attempt.retryable,
            random=self._jitter,
        )
        return Settled(claimed, attempt, retry_at=next_step.retry_at, gave_up=next_step.gave_up)

    def deliver_due(self, worker: str) -> int:
        """Deliver, one group at a time, whatever is due now; for the embedded queue and tests."""
        count = 0
        while claimed := self._store.outbox.claim(
            worker=worker,
            now=self._clock(),
            lease=self.lease,
            limit=32,
            per_recipient=32,
            in_flight={},
        ):
            count += len(self.deliver_group(claimed).results)
        return count
