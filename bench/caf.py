"""caf-relay as deployed: `caf-relay worker` processes configured by their environment alone,
on a store prepared through the Python API exactly as the tests prepare theirs.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from bench.isolation import BROKER_PASSWORD, BROKER_USER, Broker
from bench.processes import Child
from bench.traffic import SENDER
from contracts.reference import LONDON_AUTHORITIES
from service.access import OPERATOR
from service.bootstrap import build_services
from service.config import Settings
from service.store import tables
from service.store.store import Store
from service.worker import DEAD_QUEUE, TRANSFERS_QUEUE, declare_topology
from tests.support import examples

CAF_RELAY = str(Path(sys.executable).with_name("caf-relay"))
OUTPUT_EXCHANGE = "bench.out"
OUTPUT_QUEUE = "bench.out"
OUTPUT_KEY = "caf"


def relay_env(
    instance_dir: Path, database_url: str, broker: Broker, secrets_key: str, prefetch: int
) -> dict[str, str]:
    """The settings every process of one run shares; each worker adds its own name."""
    return {
        "CAF_RELAY_INSTANCE_DIR": str(instance_dir),
        "CAF_RELAY_DATABASE_URL": database_url,
        "CAF_RELAY_BROKER_URL": broker.url,
        "CAF_RELAY_SECRETS_KEYS": secrets_key,
        "CAF_RELAY_PREFETCH": str(prefetch),
        "CAF_RELAY_LOG_LEVEL": "WARNING",
    }


def prepare_store(env: dict[str, str], broker: Broker) -> None:
    """Prepare intake (``prepare_intake``) and point every London authority at the bench
    queue.

    Done here, before any worker starts, so that the signing and audit keys are made once in the
    instance folder and the workers' start-up is not part of what is measured.
    """
    services = build_services(Settings.from_env(env))
    try:
        prepare_intake(services.store)
        settings = {
            "url": broker.adapter_url,
            "exchange": OUTPUT_EXCHANGE,
            "routing_key": OUTPUT_KEY,
        }
        secrets = {"username": BROKER_USER, "password": BROKER_PASSWORD}
        for code in LONDON_AUTHORITIES:
            services.store.organisations.set_adapter(code, "amqp", settings, secrets)
    finally:
        services.close()


def prepare_intake(store: Store) -> None:
    """Migrate, record the pan-London ISP and register the bench's broker user as the sender's
    publisher (Hackney, as its case system's account would be): all intake needs to take the
    bench's routine events to signed envelopes."""
    store.initialise()
    store.add_isp(examples.pan_london_isp())
    store.access.set_broker_publisher(BROKER_USER, SENDER, by=OPERATOR)


def declare_queues(broker: Broker) -> None:
    """The relay's own topology, and the receiving borough's exchange and queue, emptied."""
    with broker.channel() as channel:
        declare_topology(channel)
        channel.exchange_declare(OUTPUT_EXCHANGE, "direct", durable=True)
        channel.queue_declare(OUTPUT_QUEUE, durable=True)
        channel.queue_bind(OUTPUT_QUEUE, OUTPUT_EXCHANGE, OUTPUT_KEY)
        for queue in (TRANSFERS_QUEUE, DEAD_QUEUE, OUTPUT_QUEUE):
            channel.queue_purge(queue)


def workers(env: dict[str, str], count: int, folder: Path, label: str) -> list[Child]:
    """``count`` worker processes (not started), each under its own name as the README asks."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CAF_RELAY_")}
    return [
        Child(
            f"{label}-worker-{n}",
            [CAF_RELAY, "worker"],
            {**inherited, **env, "CAF_RELAY_WORKER_NAME": f"bench-{label}-{n}"},
            folder / f"{label}-worker-{n}.log",
        )
        for n in range(1, count + 1)
    ]


def store_problems(env: dict[str, str]) -> list[str]:
    """What the store shows went wrong: transfers not delivered, failed attempts, a bad chain."""
    services = build_services(Settings.from_env(env))
    problems = []
    try:
        states, failed_attempts, outbox = _store_counts(services.settings.database_url)
        stuck = {state: n for state, n in states.items() if state != "delivered"}
        if stuck:
            problems.append(f"transfers not delivered: {dict(stuck)}")
        if failed_attempts:
            problems.append(f"{failed_attempts} failed delivery attempts")
        if outbox:
            problems.append(f"{outbox} items left in the outbox")
        report = services.audit.verify()
        if not report.intact:
            problems.append(f"audit chain does not verify: {report.as_dict()['first_bad_record']}")
    finally:
        services.close()
    return problems


def _store_counts(database_url: str) -> tuple[Counter, int, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            states = Counter(
                dict(
                    conn.execute(
                        sa.select(tables.Transfer.state, sa.func.count()).group_by(
                            tables.Transfer.state
                        )
                    ).all()
                )
            )
            failed = conn.scalar(
                sa.select(sa.func.count())
                .select_from(tables.DeliveryAttempt)
                .where(tables.DeliveryAttempt.succeeded.is_(False))
            )
            outbox = conn.scalar(sa.select(sa.func.count()).select_from(tables.OutboxItem))
        return states, failed, outbox
    finally:
        engine.dispose()
