"""PostgreSQL refuses connections for a while: the worker holds its messages, acknowledging and
losing none, and carries on by itself when the database is back."""

import json
import os
import subprocess
import time
from urllib.parse import unquote, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from service.worker import DEAD_QUEUE, TRANSFERS_QUEUE
from tests.support import examples
from tests.support.amqp import publish, take, wait_until
from tests.support.https_receiver import event_ids
from tests.support.processes import RelayProcess

BEFORE, DURING = 20, 50


def _queue_depth(broker_url: str) -> int:
    """Messages in caf.transfers, ready or delivered but not yet acknowledged."""
    vhost = unquote(urlsplit(broker_url).path.lstrip("/"))
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages",
            "--formatter",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return next(q["messages"] for q in json.loads(listed.stdout) if q["name"] == TRANSFERS_QUEUE)


def _allow_connections(database_url: str, allowed: bool) -> None:
    name = make_url(database_url).database
    server = sa.create_engine(
        os.environ["CAF_RELAY_TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT"
    )
    with server.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed)}'))
        if not allowed:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            # Terminating is asynchronous: wait until no session is left on the database.
            remaining = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")
            wait_until(lambda: connection.execute(remaining, {"name": name}).scalar() == 0)
    server.dispose()


def _store_refusals(log_file) -> int:
    """How many times, by its log, the worker has been refused the store and held its batch."""
    return log_file.read_text().count("store unavailable, holding")


def _delivered(services, events) -> bool:
    views = [services.store.transfers.view(e["id"]) for e in events]
    return all(view is not None and view["state"] == "delivered" for view in views)


def test_messages_wait_out_a_database_outage(services, broker_url, receiver, report, tmp_path):
    database_url = services.settings.database_url
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite is a file beside the worker; it cannot become unreachable")
    log_file = tmp_path / "worker.log"
    stderr = log_file.open("wb")
    relay = RelayProcess(services, broker_url).start(stderr=stderr)
    before = [examples.routine(f"db-before-{n}", case=f"D-{n}") for n in range(BEFORE)]
    during = [examples.routine(f"db-during-{n}", case=f"D-{n}") for n in range(DURING)]
    try:
        publish(broker_url, *map(examples.encode, before))
        # Cut the database once the earlier deliveries are recorded, not merely sent: an outcome
        # lost with the database is delivered again, which is another drill's subject.
        wait_until(lambda: _delivered(services, before))

        _allow_connections(database_url, False)
        outage_started = time.monotonic()
        try:
            publish(broker_url, *map(examples.encode, during))
            # The broker's queue figures lag by a few seconds; they must come to show all of
            # them, held (unacknowledged or ready), and nothing may reach caf.dead.
            wait_until(lambda: _queue_depth(broker_url) == DURING, timeout=120)
            # Still so once the worker has since tried the store again and been refused.
            refusals = _store_refusals(log_file)
            wait_until(lambda: _store_refusals(log_file) > refusals, timeout=120)
            held = _queue_depth(broker_url)
            dead = take(broker_url, DEAD_QUEUE, 1, timeout=0.5)
            alive_during = relay.alive()
        finally:
            _allow_connections(database_url, True)
        outage = time.monotonic() - outage_started

        wait_until(lambda: len(set(event_ids(receiver.requests))) >= BEFORE + DURING, timeout=120)
        assert relay.alive()
    finally:
        assert relay.stop() == 0
        stderr.close()

    report("database outage", outage_seconds=round(outage, 1), held_in_queue=held)
    assert alive_during, "the worker died while the database was away"
    assert dead == [], "a message was dead-lettered because the database was away"
    assert held == DURING, "messages were acknowledged or lost while the database was away"
    assert sorted(event_ids(receiver.requests)) == sorted(e["id"] for e in before + during)
