"""What the API answers when something beneath it fails: the database unavailable, or a fault
of the code itself. Each on a database of the test's own, so that cutting it off touches
nothing else on the server."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import request
from sqlalchemy.engine import make_url

from service.api.problems import PROBLEM_TYPE
from service.bootstrap import Services
from service.store.engine import StoreUnavailable
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
