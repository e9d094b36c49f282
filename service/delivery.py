"""Hands a stored, signed envelope to the receiving authority's adapter and records the attempt.

Adapters are built once per authority and configuration and reused, so a connection to a
borough's broker or HTTPS endpoint is not reopened for every envelope. A broken configuration or
an adapter that raises is recorded as a failed attempt with its reason; it never stops the relay.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from adapters.base import Adapter, DeliveryFailed
from adapters.registry import AdapterConfigError, build_adapter
from service.secrets import SecretsKeyError
from service.store.store import DeliveryRecord, Store

log = logging.getLogger(__name__)


class AdapterCache:
    """One live adapter per authority, rebuilt when its stored configuration changes."""

    def __init__(self) -> None:
        self._adapters: dict[str, tuple[datetime, Adapter]] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, authority: str) -> tuple[str, Adapter]:
        setting = store.adapter_setting(authority)
        if setting is None:
            raise AdapterConfigError(f"No adapter is configured for {authority}.")
        with self._lock:
            cached = self._adapters.get(authority)
            if cached is not None and cached[0] == setting.updated_at:
                return setting.adapter_type, cached[1]
            if cached is not None:
                cached[1].close()
            adapter = build_adapter(setting.adapter_type, setting.settings, setting.secrets)
            self._adapters[authority] = (setting.updated_at, adapter)
            return setting.adapter_type, adapter

    def close(self) -> None:
        with self._lock:
            for _, adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()


class Deliverer:
    def __init__(self, store: Store, adapters: AdapterCache) -> None:
        self._store = store
        self._adapters = adapters

    def deliver(self, event_id: str) -> DeliveryRecord | None:
        """Try once to deliver the envelope of ``event_id``; None if it has no envelope."""
        envelope = self._store.outbound(event_id)
        if envelope is None:
            return None
        adapter_type = None
        started = time.monotonic()
        try:
            adapter_type, adapter = self._adapters.get(self._store, envelope.to_authority)
            receipt = adapter.deliver(envelope)
            succeeded, retryable, detail = True, False, receipt.detail
        except (AdapterConfigError, SecretsKeyError) as exc:
            succeeded, retryable, detail = False, True, f"Adapter not usable: {exc}"
        except DeliveryFailed as exc:
            succeeded, retryable, detail = False, exc.retryable, exc.reason
        except Exception as exc:  # an adapter's bug must not stop the relay
            log.exception("adapter raised", extra={"event_id": event_id})
            succeeded, retryable, detail = False, True, f"Adapter error: {type(exc).__name__}"
        record = DeliveryRecord(
            event_id=event_id,
            envelope_id=envelope.envelope_id,
            adapter_type=adapter_type,
            succeeded=succeeded,
            retryable=retryable,
            detail=detail,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        self._store.record_delivery(record)
        log.info(
            "delivery %s",
            "succeeded" if succeeded else "failed",
            extra={"event_id": event_id, "adapter_type": adapter_type, "detail": detail},
        )
        return record

    def deliver_outstanding(self) -> int:
        """Deliver whatever is signed but not yet attempted, e.g. after a crash; return how many."""
        pending = self._store.awaiting_delivery()
        for event_id in pending:
            self.deliver(event_id)
        return len(pending)
