"""A RabbitMQ vhost and PostgreSQL databases of the benchmark's own, removed afterwards.

The benchmark shares its servers with the test suite and with developers, so it works only inside
what it created, never restarts a server, and removes what it created whatever failed.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import pika
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BROKER_USER = "guest"
BROKER_PASSWORD = "guest"
# A database to connect to while creating a run's own: the machine's, as in the README.
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Broker:
    """Where the benchmark's vhost is, in the forms the bench, the worker and an adapter need."""

    host: str
    port: int
    vhost: str

    @property
    def url(self) -> str:
        return f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@{self._address}"

    @property
    def adapter_url(self) -> str:
        """The amqp adapter refuses credentials in its URL; they go in its secrets."""
        return f"amqp://{self._address}"

    @property
    def _address(self) -> str:
        return f"{self.host}:{self.port}/{quote(self.vhost, safe='')}"

    @contextmanager
    def channel(self) -> Iterator[BlockingChannel]:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()

    def consumers(self, queue: str) -> int:
        with self.channel() as channel:
            return channel.queue_declare(queue, passive=True).method.consumer_count

    def messages(self, queue: str) -> int:
        with self.channel() as channel:
            return channel.queue_declare(queue, passive=True).method.message_count

    def depths(self, *queues: str) -> str:
        """Ready and unacknowledged messages per queue, to tell where missing events are."""
        listed = rabbitmqctl(
            *("list_queues", "-p", self.vhost, "name", "messages_ready"),
            *("messages_unacknowledged", "--formatter", "json"),
        )
        found = {q["name"]: q for q in json.loads(listed)}
        return "; ".join(
            f"{name}: {found[name]['messages_ready']} ready, "
            f"{found[name]['messages_unacknowledged']} unacked"
            for name in queues
            if name in found
        )


@contextmanager
def own_vhost(host: str, port: int) -> Iterator[Broker]:
    """A vhost that exists only for this run, with guest allowed everything in it."""
    name = f"caf-bench-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, BROKER_USER, ".*", ".*", ".*")
        yield Broker(host, port, name)
    finally:
        rabbitmqctl("delete_vhost", name)


@contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards even if still in use."""
    name = f"caf_relay_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
