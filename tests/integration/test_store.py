"""The store on a real database: schema from migrations, atomic intake, secrets sealed at rest."""

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet

from contracts.reference import LONDON_AUTHORITIES
from service import authorities
from service.access import OPERATOR, Principal, Role
from service.secrets import SecretBox
from service.senders import EMBEDDED
from service.store import tables as t
from service.store.engine import MIGRATIONS, SCHEMA_REVISION, StoreUnavailable
from service.store.isps import IspChange
from service.store.store import NewTransfer, Store
from service.store.tables import Base, Isp
from tests.conftest import fixed_clock, fresh_database, services_on
from tests.support import examples, tokens
from tests.support.https_receiver import https_recipients
from tests.support.isps import NEWHAM, TOWER_HAMLETS, bilateral
from tests.support.migrations import down_and_up_again
from tests.support.read_only import refusing_changes
from tests.support.store_reads import audit_actions, broker_publisher


def test_migrations_create_exactly_the_schema_the_code_uses(migrated_database):
    """Server defaults too (0010's ``max_lag_us``), which Alembic leaves out unless asked."""
    engine = sa.create_engine(migrated_database)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_server_default": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


GROWING = ("audit_records", "outbox", "delivery_attempts", "dead_letters")
PAST_32_BITS = 2**31


@pytest.fixture
def ids_past_32_bits(services):
    """The growing tables' id sequences moved past what a 32-bit column holds, then back."""
    engine = sa.create_engine(services.store.url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("SQLite's row ids are its 64-bit rowids, with no sequence to move")
    moved = "SELECT setval(pg_get_serial_sequence(:table, 'id'), :value, false)"
    with engine.begin() as conn:
        for table in GROWING:
            conn.execute(sa.text(moved), {"table": table, "value": PAST_32_BITS})
    try:
        yield engine
    finally:
        with engine.begin() as conn:  # the next test's set-up deletes this test's rows
            for table in GROWING:
                conn.execute(sa.text(moved), {"table": table, "value": 1})
        engine.dispose()


def test_the_relay_works_on_once_row_ids_pass_32_bits(services, ids_past_32_bits, tmp_path):
    with https_recipients(services, tmp_path, "E09000019") as receiver:
        event = examples.routine("past-32-bits", to="E09000019")
        assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
        services.store.add_dead_letter(b"{not json", "malformed JSON")
        assert services.deliverer.deliver_due("test") == 1

    assert len(receiver.requests) == 1
    view = services.store.transfers.view("past-32-bits")
    assert view["state"] == "delivered" and [d["succeeded"] for d in view["deliveries"]] == [True]
    assert services.audit.verify().intact
    with ids_past_32_bits.connect() as conn:
        for table in GROWING:
            # the outbox row is gone once delivered; its sequence has still moved on
            last = conn.execute(
                sa.text("SELECT last_value FROM pg_sequences WHERE sequencename = :name"),
                {"name": f"{table}_id_seq"},
            ).scalar_one()
            assert last >= PAST_32_BITS, table


def test_a_database_refusing_every_change_is_unavailable_not_a_fault_of_the_message(services):
    with (
        refusing_changes(services),
        pytest.raises(StoreUnavailable, match="read-only transaction"),
    ):
        services.relay.receive(examples.encode(examples.routine("read-only")), sender=EMBEDDED)
    again = services.relay.receive(examples.encode(examples.routine("read-only")), sender=EMBEDDED)
    assert again.rejection is None and again.state == "awaiting_judgement"


def test_initialise_is_repeatable_and_seeds_the_33_london_authorities(services):
    services.store.initialise()
    authorities = services.store.authorities()
    assert len(authorities) == 33
    assert authorities["E09000012"] == "Hackney"
    assert authorities["E09000001"] == "City of London"


def _start_up(database_url: str) -> int:
    """What each process (web worker, relay worker) does first; returns the authorities seen."""
    store = Store(database_url, SecretBox([Fernet.generate_key().decode()]))
    try:
        store.initialise()
        return len(store.authorities())
    finally:
        store.close()


def test_processes_starting_together_on_an_empty_database_all_come_up(tmp_path):
    # Many times over: on SQLite, one start in about 35 failed ("database is locked") while
    # another process held the new file as it switched it to WAL.
    with ProcessPoolExecutor(4) as processes:
        for _ in range(20):
            with fresh_database(tmp_path) as url:
                assert list(processes.map(_start_up, [url] * 4)) == [33] * 4


def test_upgrading_takes_the_signatures_of_isps_recorded_before_confirmations_as_confirmed(
    tmp_path,
):
    """Before migration 0005 a signature was taken as given; upgrading changes no basis."""
    with fresh_database(tmp_path) as url:
        engine = sa.create_engine(url)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0004")
            connection.execute(
                sa.insert(Isp.__table__),
                {
                    "isp_id": "newham-tower-hamlets",
                    "version": 1,
                    "status": "active",
                    "document": bilateral(),
                    "recorded_at": fixed_clock(),
                },
            )
        engine.dispose()
        store = Store(url, SecretBox([Fernet.generate_key().decode()]))
        try:
            store.initialise()
            [terms] = store.isps.terms()
            assert terms.confirmed == {NEWHAM, TOWER_HAMLETS}
            [recorded] = store.isps.versions("newham-tower-hamlets")
            assert recorded.unconfirmed == frozenset()
            assert {c.by for c in recorded.confirmations} == {None}, "no one is named"
        finally:
            store.close()


def test_the_confirmations_migration_goes_down_and_up_again(tmp_path):
    """Down and up again, a signature still awaiting its party is taken as confirmed, as the
    migration says."""
    with fresh_database(tmp_path) as url:
        store = Store(url, SecretBox([Fernet.generate_key().decode()]))
        store.initialise()
        newham_admin = Principal("Newham admin", Role.ADMIN, NEWHAM)
        store.isps.record(
            [IspChange(bilateral(), "isp_created")], now=fixed_clock(), by=newham_admin
        )
        assert store.isps.versions("newham-tower-hamlets")[0].unconfirmed == {TOWER_HAMLETS}
        store.close()
        engine = sa.create_engine(url)
        down_and_up_again(engine, "0004")
        with engine.connect() as connection:
            unnamed = connection.scalar(
                sa.text("SELECT count(*) FROM isp_confirmations WHERE confirmed_by IS NULL")
            )
        engine.dispose()
        assert unnamed == 2, "both signatures, with no one named as confirming them"


def test_the_withdrawn_envelopes_migration_keeps_every_envelope_and_delivery_attempt(tmp_path):
    """0008 rebuilds envelopes and delivery_attempts on SQLite: down and up again, with an
    attempt referring to an envelope, nothing is lost and the schema is the code's."""
    at = fixed_clock()
    with fresh_database(tmp_path) as url:
        store = Store(url, SecretBox([Fernet.generate_key().decode()]))
        store.initialise()
        store.close()
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(
                sa.insert(t.Transfer),
                {
                    "event_id": "e-1",
                    "case_reference": "CAF-1",
                    "from_authority": NEWHAM,
                    "to_authority": TOWER_HAMLETS,
                    "mode": "routine",
                    "purpose": "safeguarding",
                    "state": "signed",
                    "decision": {},
                    "event": {},
                    "received_at": at,
                    "updated_at": at,
                },
            )
            envelope = {"envelope_id": "env-1", "event_id": "e-1", "kid": "k", "sha256": "0"}
            connection.execute(sa.insert(t.Envelope), {**envelope, "jws": "x", "issued_at": at})
            attempt = {"envelope_id": "env-1", "succeeded": False, "retryable": True}
            connection.execute(
                sa.insert(t.DeliveryAttempt),
                {**attempt, "attempted_at": at, "detail": "HTTP 503", "duration_ms": 5},
            )
        down_and_up_again(engine, "0007")
        with engine.connect() as connection:
            kept = connection.execute(
                sa.select(t.DeliveryAttempt.envelope_id, t.Envelope.withdrawn_at).join(t.Envelope)
            ).all()
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        engine.dispose()
        assert kept == [("env-1", None)] and diff == []


def test_adapter_secrets_are_never_stored_in_plain_text(services, migrated_database):
    token = "s3cret-bearer-token-for-islington"
    services.store.organisations.set_adapter(
        "E09000019", "https", {"url": "https://islington.example/caf"}, {"bearer_token": token}
    )
    engine = sa.create_engine(migrated_database)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM adapter_configs")).all()
        audit = conn.execute(sa.text("SELECT detail FROM audit_records")).all()
    engine.dispose()
    assert token not in repr(rows) and token not in repr(audit)
    assert services.store.organisations.adapter_setting("E09000019").secrets == {
        "bearer_token": token
    }


def _race(*changes: Callable[[], None]) -> list[str]:
    """Run ``changes`` in threads let go together; what they raised."""
    failures = []
    start = threading.Barrier(len(changes))

    def run(change: Callable[[], None]) -> None:
        start.wait()
        try:
            change()
        except Exception as exc:  # noqa: BLE001 -- any failure is the finding
            failures.append(repr(exc))

    racers = [threading.Thread(target=run, args=(change,)) for change in changes]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    return failures


def test_two_admins_setting_a_new_authoritys_adapter_at_once_both_succeed(services, tmp_path):
    """Ten races, each at an authority with no adapter yet: before the store wrote a setting
    in one statement, most of them failed on the key."""
    organisations = services.store.organisations
    for authority in sorted(LONDON_AUTHORITIES)[:10]:
        inboxes = [str(tmp_path / f"{authority}-{n}") for n in (1, 2)]
        setting = [
            partial(organisations.set_adapter, authority, "directory", {"path": inbox}, {})
            for inbox in inboxes
        ]
        assert _race(*setting) == []
        assert organisations.adapter_setting(authority).settings["path"] in inboxes
    actions = [action for _, action, _ in audit_actions(services.store)]
    assert actions.count("adapter_set") == 20


def test_two_admins_naming_a_new_broker_publisher_at_once_both_succeed(services):
    admin = Principal("ops", Role.ADMIN, None)
    for n in range(10):
        naming = partial(
            services.store.access.set_broker_publisher, f"mosaic-{n}", "E09000012", by=admin
        )
        assert _race(naming, naming) == []
        assert broker_publisher(services.store, f"mosaic-{n}") == "E09000012"


def _each_returned(results: list, *calls: Callable[[], object]) -> list[Callable[[], None]]:
    """``calls`` that add what they return to ``results``, for ``_race``."""
    return [lambda call=call: results.append(call()) for call in calls]


def test_two_admins_naming_one_broker_user_for_two_authorities_at_once_do_not_both_get_it(
    services, tmp_path
):
    """A user is never moved from one authority to another. Each admin's check that no other
    authority had the user came before its change: both passed, and the second moved the user
    the first had just been told was its own (PostgreSQL and SQLite alike)."""
    other = services_on(services.store.url, tmp_path / "other")
    hackney = Principal("hackney admin", Role.ADMIN, "E09000012")
    islington = Principal("islington admin", Role.ADMIN, "E09000019")
    try:
        for n in range(20):
            user, told = f"case-system-{n}", []
            naming = [
                partial(authorities.set_publisher, store, admin.authority, user, by=admin)
                for store, admin in ((services.store, hackney), (other.store, islington))
            ]
            (refused,) = _race(*_each_returned(told, *naming))
            assert len(told) == 1, f"round {n}: both admins were told the user was theirs"
            publisher = told[0]["code"]
            assert user in told[0]["publishers"] and f"publishes for {publisher}" in refused
            assert broker_publisher(services.store, user) == publisher
    finally:
        other.close()


def test_a_broker_user_is_removed_only_from_the_authority_it_publishes_for(services):
    """The removal checks whose the user is as it removes it: an admin whose check went before
    the user was moved to another authority removes nothing there."""
    access = services.store.access
    access.set_broker_publisher("case-system", "E09000012", by=OPERATOR)
    assert not access.remove_broker_publisher("case-system", "E09000019", by=OPERATOR)
    assert broker_publisher(services.store, "case-system") == "E09000012"
    assert access.remove_broker_publisher("case-system", "E09000012", by=OPERATOR)
    assert broker_publisher(services.store, "case-system") is None


def _done_once_by_two_admins(services, tmp_path, prepare, act, action: str) -> None:
    """Twenty rounds of ``prepare()``, then ``act(store, prepared)`` by two admins at once, each
    on a store of its own: one is told it did it and the other that there was nothing to do,
    and the audit holds one ``action`` record a round."""
    other = services_on(services.store.url, tmp_path / "other")
    try:
        for n in range(20):
            prepared = prepare()
            done: list[bool] = []
            acting = [partial(act, store, prepared) for store in (services.store, other.store)]
            assert _race(*_each_returned(done, *acting)) == []
            assert sorted(done) == [False, True], f"round {n}"
        actions = [recorded for _, recorded, _ in audit_actions(services.store)]
        assert actions.count(action) == 20
    finally:
        other.close()


def test_two_admins_revoking_one_token_at_once_revoke_it_once(services, tmp_path):
    """On PostgreSQL both read the token as live, both revoked it and both were audited."""
    _done_once_by_two_admins(
        services,
        tmp_path,
        lambda: tokens.issue(services, "publisher", "E09000012").token_id,
        lambda store, token_id: store.access.revoke_token(token_id, now=fixed_clock(), by=OPERATOR),
        "token_revoked",
    )


def test_two_admins_removing_one_adapter_at_once_remove_it_once(services, tmp_path):
    """On PostgreSQL both read the adapter, both deleted it and both were audited."""
    _done_once_by_two_admins(
        services,
        tmp_path,
        lambda: services.store.organisations.set_adapter(
            "E09000019", "directory", {"path": str(tmp_path / "inbox")}, {}
        ),
        lambda store, _: store.organisations.remove_adapter("E09000019", by=OPERATOR),
        "adapter_removed",
    )


def test_an_opened_adapter_setting_keeps_its_secrets_out_of_its_repr(services):
    """As with ``Settings``: a log line or traceback that shows the setting must not show
    the decrypted secrets it carries to the adapter."""
    token = "s3cret-bearer-token-for-islington"
    services.store.organisations.set_adapter(
        "E09000019", "https", {"url": "https://islington.example/caf"}, {"bearer_token": token}
    )
    setting = services.store.organisations.adapter_setting("E09000019")
    assert setting.secrets == {"bearer_token": token}
    assert token not in repr(setting) and token not in str(setting)


def test_a_second_transfer_with_the_same_event_id_is_kept_out_as_a_duplicate(services):
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    new = NewTransfer(
        event, "awaiting_judgement", {"outcome": "x"}, fixed_clock(), None, [], EMBEDDED.sent_by
    )
    assert services.store.record_intake([new]).repeats == [None]
    assert services.store.record_intake([new, new]).repeats == ["duplicate", "duplicate"]
    actions = [action for _, action, _ in audit_actions(services.store, event["id"])]
    assert actions == ["duplicate", "duplicate"]
    view = services.store.transfers.view(event["id"])
    assert view["state"] == "awaiting_judgement"
    assert view["received_at"].endswith("Z")


def test_another_authoritys_transfer_with_a_stored_event_id_is_refused_as_a_conflict(services):
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    other = examples.event(examples.ROUTINE_WITHOUT_BASIS, subject="CAF-HK-2026-0009")
    other["data"]["from_authority"] = "E09000012"
    first, reused = (
        NewTransfer(
            e, "awaiting_judgement", {"outcome": "x"}, fixed_clock(), None, [], EMBEDDED.sent_by
        )
        for e in (event, other)
    )
    assert services.store.record_intake([first, reused]).repeats == [None, "id_conflict"]
    assert services.store.record_intake([reused, first]).repeats == ["id_conflict", "duplicate"]
    records = audit_actions(services.store, event["id"])
    assert [(a, d.get("rejection")) for _, a, d in records] == [
        ("rejected", "id_conflict"),
        ("rejected", "id_conflict"),
        ("duplicate", None),
    ]
    assert services.store.transfers.view(event["id"])["case_reference"] == event["subject"]


def _receiving(services, event_ids: list[str]) -> Callable[[], None]:
    """A worker taking in one batch of routine events with ``event_ids``; raises what any of
    them failed with."""
    batch = [(examples.encode(examples.routine(i)), EMBEDDED) for i in event_ids]

    def receive() -> None:
        for outcome in services.relay.receive_many(batch):
            if isinstance(outcome, Exception):
                raise outcome

    return receive


def test_two_workers_taking_in_the_same_events_in_other_orders_store_each_once(services, tmp_path):
    """A publisher sending a batch again reaches another worker at once, in another order. On
    PostgreSQL each worker's insert waited for the other's uncommitted row, and one was ended
    as deadlocked: its batch held back as if the database were down."""
    services.store.add_isp(examples.pan_london_isp())
    other = services_on(services.store.url, tmp_path / "other")
    try:
        for n in range(20):
            ids = [f"resent-{n}-{k}" for k in range(4)]
            racing = _receiving(services, ids), _receiving(other, ids[::-1])
            assert _race(*racing) == [], f"round {n}"
            for event_id in ids:
                actions = [a for _, a, _ in audit_actions(services.store, event_id)]
                assert actions.count("received") == 1 and actions.count("duplicate") == 1
                assert services.store.transfers.view(event_id)["state"] == "signed"
    finally:
        other.close()


def test_the_schema_revision_the_store_expects_is_the_newest_migration():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_a_worker_starting_on_a_store_already_migrated_loads_nothing_only_other_commands_use(
    migrated_database, tmp_path
):
    # Each is in both of a worker's processes if imported before the fork: Alembic with Mako
    # (migrations) about 10 MB, requests (https deliveries, JWKS fetches) 4, YAML (ISP and
    # judgement files) 2, Jinja (exports) 1; Flask is the web app's.
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import service.cli, service.worker, service.delivery_process;"
            "from service.cli_common import load_services;"
            "services = load_services(); services.store.initialise(); services.close();"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))",
            *("alembic", "mako", "requests", "yaml", "jinja2", "flask"),
        ],
        env={
            **os.environ,
            "CAF_RELAY_INSTANCE_DIR": str(tmp_path),
            "CAF_RELAY_DATABASE_URL": migrated_database,
            "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
            "CAF_RELAY_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert started.stdout.strip() == "[]"
