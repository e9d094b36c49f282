"""The composition root: builds the relay's parts from settings, once, and wires them together.

Entrypoints (CLI, web app, worker, demo, tests) ask for ``Services`` instead of building their
own, so every part is created in one place and passed in explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.config import Settings
from service.delivery import AdapterCache, Deliverer
from service.relay import Relay
from service.signing import KeyRing
from service.store.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    relay: Relay
    deliverer: Deliverer
    adapters: AdapterCache

    def close(self) -> None:
        self.adapters.close()
        self.store.close()


def build_services(
    settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Services:
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url, settings.secret_box())
    keyring = settings.keyring()
    adapters = AdapterCache()
    return Services(
        settings=settings,
        store=store,
        keyring=keyring,
        relay=Relay(store, keyring, max_event_bytes=settings.max_event_bytes, clock=clock),
        deliverer=Deliverer(store, adapters),
        adapters=adapters,
    )
