"""The composition root: builds the relay's parts from settings, once, and wires them together.

Entrypoints (CLI, web app, worker, demo, tests) ask for ``Services`` instead of building their
own, so every part is created in one place and passed in explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.audit import Audit, AuditSearches
from service.child_reads import ChildReads
from service.config import PREFIX, Settings
from service.delivery import AdapterCache, Deliverer
from service.delivery_loop import DeliveryLoop
from service.domain.child_keys import ChildKeys
from service.judgements import Judgements
from service.logs import configure_logging
from service.relay import Relay
from service.retention import Retention
from service.sealing import Sealer
from service.senders import BrokerSenders
from service.signing import KeyRing
from service.store.store import Store
from service.subject_access import SubjectAccess


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    relay: Relay
    deliverer: Deliverer
    adapters: AdapterCache
    clock: Callable[[], datetime]
    child_keys: ChildKeys
    audit: Audit
    audit_searches: AuditSearches
    subject_access: SubjectAccess
    retention: Retention
    senders: BrokerSenders
    judgements: Judgements

    def delivery_loop(self) -> DeliveryLoop:
        """A loop delivering from the outbox, as configured; the caller runs and stops it.

        A judgement recorded in this process wakes it, as a stored event wakes it at intake.
        """
        loop = DeliveryLoop(
            self.store,
            self.deliverer,
            worker=self.settings.worker_name,
            threads=self.settings.delivery_threads,
            per_recipient=self.settings.delivery_per_recipient,
            clock=self.clock,
        )
        self.judgements.wake_on_signed(loop.wake)
        return loop

    def close(self) -> None:
        self.adapters.close()
        self.store.close()


def services_from_env() -> Services:
    """The services the environment's settings describe, logging as they say: how every
    process starts. A wrong setting is a ValueError naming it."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return build_services(settings)


def build_services(
    settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Services:
    try:
        settings.instance_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{PREFIX}INSTANCE_DIR {settings.instance_dir} cannot be made: {exc.strerror}."
        ) from exc
    store = Store(settings.database_url, settings.secret_box())
    keyring = settings.keyring()
    child_keys = settings.child_keys()
    adapters = AdapterCache()
    reads = ChildReads(store.record_audit)
    sealer = Sealer(keyring)
    relay = Relay(
        store, sealer, child_keys=child_keys, max_event_bytes=settings.max_event_bytes, clock=clock
    )
    return Services(
        settings=settings,
        store=store,
        keyring=keyring,
        relay=relay,
        deliverer=Deliverer(
            store, adapters, retry=settings.retry, lease=settings.delivery_lease, clock=clock
        ),
        adapters=adapters,
        clock=clock,
        child_keys=child_keys,
        audit=Audit(store.audit, keyring, clock),
        audit_searches=AuditSearches(store.audit_search, child_keys, reads),
        subject_access=SubjectAccess(store.audit_search, child_keys, reads, clock),
        retention=Retention(
            store.payloads,
            store.dead_letters,
            judgement_days=settings.judgement_retention_days,
            dead_letter_days=settings.dead_letter_retention_days,
            clock=clock,
        ),
        senders=BrokerSenders(settings.trusted_broker_users),
        judgements=Judgements(store, sealer, clock),
    )
