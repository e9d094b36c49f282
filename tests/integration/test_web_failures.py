"""What the API answers when something beneath it fails: the database unavailable, or a fault
of the code itself. Each on a database of the test's own, so that cutting it off touches
nothing else on the server."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import request
from sqlalchemy.engine import make_url

from service.api.problems import PROBLEM_TYPE
from service.bootstrap import Services
from service.readiness import DATABASE_WRITE_SECONDS
from service.store.engine import BUSY_SECONDS, StoreUnavailable
from service.store.write_turns import WriteTurns
from service.web import create_app
from tests.conftest import fresh_database, services_on
from tests.support import examples
from tests.support.amqp import wait_until
from tests.support.declared import declared
from tests.support.tokens import bearer

HACKNEY = "E09000012"


@pytest.fixture
def own(tmp_path) -> Iterator[Services]:
    """The relay's parts on a database made for this test alone."""
    with fresh_database(tmp_path) as url:
        built = services_on(url, tmp_path)
        built.store.initialise()
        try:
            yield built
        finally:
            built.close()


@contextmanager
def database_unavailable(url: str) -> Iterator[None]:
    """The database at ``url`` unavailable to the relay while the block runs: on PostgreSQL it
    refuses connections (its sessions ended), as in tests/faults/test_database_outage.py; a
    SQLite file is locked by another connection's write for longer than the busy timeout."""
    name = make_url(url).database
    if not url.startswith("postgresql"):
        writer = sqlite3.connect(name, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.rollback()
            writer.close()
        return
    server = sa.create_engine(
        os.environ["CAF_RELAY_TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT"
    )
    sessions = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")
    try:
        with server.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            wait_until(lambda: connection.execute(sessions, {"name": name}).scalar() == 0)
        yield
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        server.dispose()


def test_an_event_sent_while_the_database_is_unavailable_is_a_503_saying_to_try_again(own, caplog):
    """On SQLite the answer comes once the busy timeout (30 s) is waited out, so the test makes
    one call only; every call goes the same way, as each looks up its token first."""
    client = create_app(own).test_client()
    publisher = bearer(own, "publisher", HACKNEY)
    event = examples.encode(examples.routine("while-down"))
    with database_unavailable(own.store.url), caplog.at_level(logging.INFO):
        response = client.post("/api/v1/events", data=event, headers=publisher)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_TYPE
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["detail"] == (
        "The database is unavailable; try again in a few seconds."
    )
    assert 503 in declared("POST", "/api/v1/events")
    [said] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert said.getMessage().startswith(
        "database unavailable; answered POST /api/v1/events with 503: "
    )
    assert said.exc_info is None, "an outage is one line, not a traceback"

    # Once it is back, the same call works: nothing of it was kept the first time.
    assert client.post("/api/v1/events", data=event, headers=publisher).status_code == 202


def test_the_audit_walk_finding_the_database_gone_says_it_is_unavailable(own):
    """``GET /api/v1/audit/verify`` reads the chain in a snapshot of its own, after the token's
    lookup: a database gone by then is the same 503, not an unexpected error."""
    if not own.store.url.startswith("postgresql"):
        pytest.skip("a SQLite snapshot only reads, which another connection's write lock allows")
    with database_unavailable(own.store.url), pytest.raises(StoreUnavailable):
        own.audit.verify()


CHILD = {"given_name": "Jo", "family_name": "Bloggs", "date_of_birth": "2015-03-02"}


def _fails_quoting_what_it_was_given():
    """A view whose error quotes what it was handling, as a parser's or a client library's
    can: here the child in the body and the caller's token."""
    raise ValueError(f"{request.headers['Authorization']} sent {request.get_json()}")


def test_an_unexpected_error_is_a_500_with_an_error_id_logged_without_its_message(services, caplog):
    app = create_app(services)
    app.add_url_rule("/api/v1/fails", view_func=_fails_quoting_what_it_was_given, methods=["POST"])
    auth = bearer(services, "admin")
    with caplog.at_level(logging.INFO):
        response = app.test_client().post("/api/v1/fails", json=CHILD, headers=auth)
    assert response.status_code == 500
    assert response.mimetype == PROBLEM_TYPE
    body = response.get_json()
    error_id = body["error_id"]
    assert error_id in body["detail"]
    assert "Bloggs" not in response.get_data(as_text=True)
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    said = line.getMessage()
    assert error_id in said and "ValueError" in said and "_fails_quoting_what_it_was_given" in said
    assert line.exc_info is None, "a traceback would quote the error's message"
    secret = auth["Authorization"].removeprefix("Bearer ")
    assert secret not in caplog.text and "Bloggs" not in caplog.text


def test_readiness_answers_within_seconds_while_another_connection_holds_a_long_write(own):
    """A probe must answer within its orchestrator's timeout: on SQLite the check waits for the
    write lock at most DATABASE_WRITE_SECONDS, not the 30 s busy timeout of ordinary calls, and
    says why it is not ready."""
    if own.store.url.startswith("postgresql"):
        pytest.skip("a PostgreSQL check only reads, which another connection's write allows")
    client = create_app(own).test_client()
    with database_unavailable(own.store.url):
        started = time.monotonic()
        response = client.get("/readyz")
        waited = time.monotonic() - started
    assert response.status_code == 503
    assert DATABASE_WRITE_SECONDS <= waited < DATABASE_WRITE_SECONDS + 2
    check = response.get_json()["checks"]["database"]
    assert check == {
        "status": "failed",
        "detail": "StoreUnavailable: Another connection has held the database's write lock for "
        f"longer than {DATABASE_WRITE_SECONDS} s (database is locked).",
    }
    assert client.get("/readyz").status_code == 200, "once the write ends, it is ready again"


def _write_as_another_relay_process(name: str, writing, done) -> None:
    """What a relay process does for a store transaction on SQLite: its turn, then the write lock,
    here held until the test is done (or a minute and a half has passed)."""
    turns = WriteTurns(f"sqlite:///{name}")
    with turns:
        writer = sqlite3.connect(name, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writing.set()
        done.wait(90)
        writer.rollback()
        writer.close()
    turns.close()


def test_a_call_waiting_on_another_process_s_long_write_gives_up_after_the_busy_timeout(own):
    """Another relay process in a long SQLite write holds its turn to write as well as the lock:
    a call waits for its turn at most BUSY_SECONDS, as for the lock, then answers 503, rather
    than waiting for as long as the other process writes."""
    if own.store.url.startswith("postgresql"):
        pytest.skip("turns to write are SQLite's")
    context = multiprocessing.get_context("fork")
    writing, done = context.Event(), context.Event()
    name = make_url(own.store.url).database
    other = context.Process(target=_write_as_another_relay_process, args=(name, writing, done))
    client = create_app(own).test_client()
    publisher = bearer(own, "publisher", HACKNEY)
    event = examples.encode(examples.routine("behind-a-long-write"))
    caller = ThreadPoolExecutor(1)
    other.start()
    try:
        assert writing.wait(10)
        started = time.monotonic()
        answer = caller.submit(client.post, "/api/v1/events", data=event, headers=publisher)
        response = answer.result(timeout=BUSY_SECONDS + 15)
        waited = time.monotonic() - started
    finally:
        done.set()
        other.join(10)
        caller.shutdown()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert BUSY_SECONDS <= waited < BUSY_SECONDS + 5
    assert client.post("/api/v1/events", data=event, headers=publisher).status_code == 202
