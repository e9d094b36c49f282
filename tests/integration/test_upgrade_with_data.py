"""A populated store upgraded from each earlier revision, as a borough upgrading from an older
release has one: every row kept, and the relay goes on with them. The audit still verifies, a
parked transfer can still be judged, a signed one is delivered and its envelope verifies at the
recipient, adapter secrets still open, the API answers, the dead letters are still listed.

The store is filled at the newest revision by the relay itself, then taken down to the earlier
one by the migrations' own downgrades and brought up again, the way ``caf-relay db upgrade``
does. What a downgrade drops by design (token expiry, a dead letter's event id) is left out of
the rows compared, and so are the tables an earlier revision did not have yet.

Also: an upgrade that fails part-way leaves the store as it was (one transaction, DDL included,
on PostgreSQL and on SQLite, where 0008 rebuilds tables in batch mode).
"""

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.access import Principal, Role
from service.bootstrap import build_services
from service.senders import EMBEDDED
from service.signing import verify
from service.store import tables as t
from service.store.engine import SCHEMA_REVISION, MigrationFailed, make_engine
from service.web import create_app
from tests.conftest import fixed_clock, fresh_database, services_on
from tests.support import examples, judgements, tokens
from tests.support.https_receiver import https_recipients
from tests.support.isps import NEWHAM
from tests.support.migrations import REFUSING_HEAD_UPDATES, migrate

ISLINGTON = "E09000019"
# The recipients of the routine example, of the ad hoc one, and of the one parked.
RECIPIENTS = (ISLINGTON, "E09000028", "E09000030")
EARLIER = [f"{n:04d}" for n in range(1, int(SCHEMA_REVISION))]
AD_HOC = examples.load(examples.AD_HOC_WITH_JUDGEMENT)["id"]
STATES = ("failed", "delivered", "signed", "judged", "parked")
PRACTITIONER = Principal("Ada Newham", Role.PRACTITIONER, NEWHAM, "tok-newham")
# Columns a downgrade drops, and with them what they held, as the migrations' docstrings say;
# and the counter that intake's cache checks (0003), which starts again when it is made again.
DROPPED = {
    "api_tokens": {"expires_at"},
    "dead_letters": {"event_id"},
    "reference_version": {"version"},
}


def _rows(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every table's rows as they are, in a fixed order, without the columns a downgrade drops."""
    tables = sa.MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted(
                connection.execute(
                    sa.select(*(c for c in table.c if c.name not in DROPPED.get(name, ())))
                ).all(),
                key=repr,
            )
            for name, table in tables.tables.items()
        }


def _schema(engine: sa.Engine) -> dict[str, tuple]:
    """Each table's columns, indexes and unique constraints, as the database has them."""
    inspector = sa.inspect(engine)
    return {
        name: (
            [column["name"] for column in inspector.get_columns(name)],
            sorted((i["name"], i["column_names"]) for i in inspector.get_indexes(name)),
            sorted(u["column_names"] for u in inspector.get_unique_constraints(name)),
        )
        for name in inspector.get_table_names()
    }


def _populate(services, receiver) -> None:
    """Transfers in every state, judgements, an ISP, adapters with secrets, a token, a dead
    letter, and the audit of it all; one transfer, ``parked``, is left awaiting judgement."""
    relay = services.relay
    receiver.respond_with(400)
    assert relay.receive(examples.encode(examples.routine("failed")), sender=EMBEDDED)
    assert services.deliverer.deliver_due("test") == 1
    assert relay.receive(examples.encode(examples.routine("delivered")), sender=EMBEDDED)
    assert services.deliverer.deliver_due("test") == 1
    for name in (examples.AD_HOC_WITH_JUDGEMENT, examples.JUDGEMENT_NOT_TO_SHARE):
        relay.receive(examples.encode(examples.event(name)), sender=EMBEDDED)
    relay.receive(examples.encode(examples.routine("signed")), sender=EMBEDDED)
    for parked in ("judged", "parked"):
        event = examples.event(examples.ROUTINE_WITHOUT_BASIS, id=parked)
        relay.receive(examples.encode(event), sender=EMBEDDED)
    services.judgements.record("judged", judgements.not_share(), by=PRACTITIONER)
    services.store.add_dead_letter(b"{not json", "malformed JSON")
    tokens.issue(services, "admin", ISLINGTON)
    states = {view["state"] for view in map(services.store.transfers.view, STATES)}
    assert states == {"failed", "delivered", "signed", "awaiting_judgement", "withheld"}


def _down_and_up(engine: sa.Engine, revision: str) -> set[str]:
    """Take the store down to ``revision`` and up again; the tables it had at ``revision``."""
    migrate(engine, command.downgrade, revision)
    held = set(sa.inspect(engine).get_table_names())
    migrate(engine, command.upgrade, "head")
    return held


@pytest.fixture
def populated(tmp_path):
    """A store filled at the newest revision (``_populate``): its engine, the relay's parts on
    it, and the recipients' HTTPS server."""
    with fresh_database(tmp_path) as url:
        engine = make_engine(url)
        services = services_on(url, tmp_path)
        services.store.initialise()
        try:
            with https_recipients(services, tmp_path, *RECIPIENTS) as receiver:
                _populate(services, receiver)
                yield engine, services, receiver
        finally:
            services.close()
            engine.dispose()


def test_a_populated_store_upgraded_from_each_earlier_revision_keeps_its_data_and_works(
    populated,
):
    engine, populating, receiver = populated
    populating.close()
    before = _rows(engine)
    # Newest first: each round trip keeps every table the next one starts from.
    for revision in reversed(EARLIER):
        held = _down_and_up(engine, revision) & set(before)
        after = _rows(engine)
        kept = {n: after[n] for n in held}
        assert kept == {n: before[n] for n in held}, f"upgrading from {revision}"
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert compare_metadata(context, t.Base.metadata) == [], revision

    # A process of this release, started on the store last upgraded from 0001.
    services = build_services(populating.settings, clock=fixed_clock)
    try:
        services.store.initialise()
        assert services.audit.verify().intact
        judged = services.judgements.record("parked", judgements.share(), by=PRACTITIONER)
        assert judged == "signed"
        assert services.deliverer.deliver_due("test") == 3
        delivered = [verify(r.body, services.keyring.jwks())[1] for r in receiver.requests]
        with engine.connect() as connection:
            signed = connection.scalars(sa.select(t.Envelope.jws)).all()
        stored = [verify(jws, services.keyring.jwks())[1]["event_id"] for jws in signed]
        assert services.store.organisations.adapter_setting(ISLINGTON).secrets == {
            "bearer_token": "a-token-of-sixteen-or-more"
        }
        # The token made before is gone with 0001's round trip (the rows above kept it
        # through every later one): the API is called with one made since.
        listed = (
            create_app(services)
            .test_client()
            .get("/api/v1/transfers", headers=tokens.bearer(services, "admin", ISLINGTON))
        )
        letters = services.store.dead_letters.page(None, after=0, size=10)
        assert services.audit.verify().intact
    finally:
        services.close()
    assert {p["event_id"] for p in delivered[-3:]} == {"signed", AD_HOC, "parked"}
    assert sorted(stored) == sorted(["failed", "delivered", "signed", AD_HOC, "parked"])
    assert listed.status_code == 200
    assert [letter.reason for letter in letters.letters] == ["malformed JSON"]


def test_an_upgrade_that_fails_part_way_leaves_the_store_as_it_was(populated):
    """From 0007, 0008 rebuilds envelopes and delivery attempts (on SQLite) and 0009 adds a
    column before 0010 fails on the chain head: the store is left at 0007, schema and rows,
    and upgrades once what failed it is put right."""
    engine, services, _ = populated
    migrate(engine, command.downgrade, "0007")
    create, drop = REFUSING_HEAD_UPDATES[engine.dialect.name]
    with engine.begin() as connection:
        for statement in create:
            connection.execute(sa.text(statement))
    before, schema = _rows(engine), _schema(engine)
    with pytest.raises(MigrationFailed, match="refused for the test"):
        services.store.initialise()
    after, schema_after = _rows(engine), _schema(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(drop))
    applied = [migration.revision for migration in services.store.initialise()]
    assert services.audit.verify().intact
    assert after["alembic_version"] == [("0007",)]
    assert (after, schema_after) == (before, schema)
    assert applied == [*EARLIER[EARLIER.index("0008") :], SCHEMA_REVISION]
