"""Fixtures for the real services: a RabbitMQ vhost and a database of this test session's own.

Each session gets a fresh vhost and (on PostgreSQL) a fresh database, so parallel runs on one
machine, CI's and a developer's, never see each other's messages or rows. The database under
test is chosen by CAF_RELAY_TEST_DATABASE_URL: unset means a SQLite file, a postgresql URL means
that server (the tests create and drop a database of their own there).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from contracts.reference import LONDON_AUTHORITIES
from service.bootstrap import Services, build_services
from service.config import Settings
from service.secrets import SecretBox
from service.store import tables
from service.store.store import Store
from tests.support.declared import answers_undeclared

BROKER_HOST = os.environ.get("CAF_RELAY_TEST_BROKER_HOST", "127.0.0.1")


def rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl on the test broker; only ever on a vhost of this test session."""
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """An AMQP URL for a vhost that exists only for this test session."""
    vhost = f"caf-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{BROKER_HOST}:5672/{quote(vhost, safe='')}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextmanager
def fresh_database(folder: Path) -> Iterator[str]:
    """A URL for a new, empty database on the server under test, dropped afterwards."""
    server_url = os.environ.get("CAF_RELAY_TEST_DATABASE_URL", "")
    if not server_url.startswith("postgresql"):
        yield f"sqlite:///{folder / f'caf-relay-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    name = f"caf_relay_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """A database that exists only for this test session."""
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


# Decisions are made on this day, whatever day the tests run, so ISP dates stay meaningful.
TEST_DAY = datetime(2026, 11, 24, tzinfo=UTC)


def fixed_clock() -> datetime:
    return TEST_DAY + timedelta(seconds=time.monotonic())


@pytest.fixture(scope="session")
def migrated_database(database_url) -> str:
    store = Store(database_url, SecretBox([Fernet.generate_key().decode()]))
    store.initialise()
    store.close()
    return database_url


@pytest.fixture
def services(migrated_database, tmp_path) -> Iterator[Services]:
    """The relay's parts on the session database, emptied of everything but the 33 authorities."""
    engine = sa.create_engine(migrated_database)
    with engine.begin() as conn:
        for table in reversed(tables.Base.metadata.sorted_tables):
            if table.name != "authorities":
                conn.execute(table.delete())
        conn.execute(
            tables.Authority.__table__.delete().where(
                tables.Authority.code.not_in(list(LONDON_AUTHORITIES))
            )
        )
        for code, name in LONDON_AUTHORITIES.items():  # as seeded: no renames, no receipt keys
            conn.execute(
                sa.update(tables.Authority)
                .where(tables.Authority.code == code)
                .values(name=name, kind="local_authority", jwks=None)
            )
    engine.dispose()
    built = services_on(migrated_database, tmp_path)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(autouse=True)
def api_answers_only_what_its_document_declares() -> Iterator[None]:
    """Every test that calls the API also checks each status it gets back is one the OpenAPI
    document declares for that operation, so the document cannot drift from what is answered."""
    with answers_undeclared() as undeclared:
        yield
    assert not undeclared, f"answers the OpenAPI document does not declare: {undeclared}"


def services_on(database_url: str, folder: Path) -> Services:
    """The relay's parts on ``database_url``, with their keys in ``folder``; the caller closes
    them."""
    settings = Settings.from_env(
        {
            "CAF_RELAY_INSTANCE_DIR": str(folder / "instance"),
            "CAF_RELAY_DATABASE_URL": database_url,
            # The tests publish as the broker's guest account, for every authority.
            "CAF_RELAY_TRUSTED_BROKER_USERS": "guest",
            "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
        }
    )
    return build_services(settings, clock=fixed_clock)
