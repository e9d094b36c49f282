"""Opening the database: an engine set up for its kind, its schema brought to the newest
revision, and the errors that mean it is unavailable told apart from a message's own faults.

``service.store.store`` opens its database through this, once per process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)

from service.store.json_text import json_text

if TYPE_CHECKING:
    import sqlite3

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision. A store already at it needs no migrating, and every process
# checks that at start-up: without Alembic, which would add about 10 MB to each of them
# (with Mako, which it imports). tests/integration/test_store.py checks it is Alembic's head.
SCHEMA_REVISION = "0013"


# How long a process tries to switch a SQLite database to WAL while others hold it.
WAL_SWITCH_SECONDS = 30

# How long a SQLite transaction waits for its turn to write (``WriteTurns``) and then for the
# write lock itself, before the call gives up as ``StoreUnavailable``.
BUSY_SECONDS = 30

# An execution option: the connection's transactions only read (see ``AuditLog.snapshot``).
READ_ONLY_SNAPSHOT = "caf_read_only_snapshot"

# Any fixed number; the processes of one deployment agree on it to migrate one at a time.
MIGRATION_LOCK_ID = 0x_CAF_0001


class StoreUnavailable(Exception):
    """The database could not be reached or was busy; the same call may succeed later."""


class SchemaTooNew(Exception):
    """The database was migrated by a newer release than this one (after a rollback, say):
    this code does not know its schema, and must not write to it."""


class SchemaBehind(Exception):
    """The database has not been migrated to this release's schema, or not at all: what this
    code reads and writes may not be there."""


# PostgreSQL's codes for a read-only transaction (a standby promoted, or a primary demoted) and
# for a privilege revoked: every message fails alike until an operator acts.
REFUSES_EVERY_CHANGE = frozenset({"25006", "42501"})


def _revision(connection: sa.Connection) -> str | None:
    """The schema revision Alembic last recorded, or None for a database it has never seen."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.scalar(sa.text("SELECT version_num FROM alembic_version"))


@dataclass(frozen=True)
class Migration:
    """A migration: its revision, what it does (its docstring's first paragraph), and what
    undoing it loses (its paragraph that begins "Downgrading", if it has one)."""

    revision: str
    title: str
    downgrading: str = ""


class MigrationFailed(Exception):
    """A migration failed; the transaction it ran in, and with it every migration of the same
    upgrade or downgrade, was rolled back."""


def _plain(doc: str) -> str:
    """A migration's docstring as one line of plain text, for a terminal: reST's ````name````
    marks a name, which reads better bare there."""
    return " ".join(doc.replace("``", "").split())


def _migration(script) -> Migration:
    """A migration as its Alembic script's docstring describes it."""
    paragraphs = script.longdoc.split("\n\n")
    downgrading = [p for p in paragraphs if p.startswith("Downgrading")]
    return Migration(script.revision, _plain(paragraphs[0]), _plain("".join(downgrading[:1])))


def _lock_for_migrating(connection: sa.Connection) -> None:
    """Migrate one process at a time: on PostgreSQL under an advisory lock, on SQLite under the
    write lock that every transaction takes first."""
    if connection.dialect.name == "postgresql":
        # A migration may rewrite a large table (0004), and the processes queued on the lock
        # wait as long: the statement limit of ordinary calls is lifted for them.
        connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))
        # But a table another release's workers are using is not waited for without end, as
        # their statements would then queue behind the migration's lock.
        connection.execute(sa.text("SET LOCAL lock_timeout = '30s'"))


def bring_to_newest_schema(connection: sa.Connection) -> list[Migration]:
    """Migrate, unless the schema is at the newest revision already (most starts), one process
    at a time. Returns the migrations applied, oldest first: those from the revision found
    under the lock, so none another process applied first."""
    _lock_for_migrating(connection)
    revision = _revision(connection)
    _refuse_newer(revision)
    if revision == SCHEMA_REVISION:
        return []
    config = _alembic(connection)  # Alembic imported here: most starts have nothing to do
    due = [_migration(s) for s in _scripts(config).iterate_revisions("head", revision or "base")]
    return _run(config, "upgrade", "head", due[::-1], revision)


def _refuse_newer(revision: str | None) -> None:
    """Raise ``SchemaTooNew`` if a newer release migrated the database to ``revision``."""
    if revision is not None and revision > SCHEMA_REVISION:  # revisions are zero-padded numbers
        raise SchemaTooNew(
            f"The database's schema is at revision {revision}, newer than this release's "
            f"{SCHEMA_REVISION}: run the release that migrated it, or first take the database "
            f"back with that release's `caf-relay db downgrade {SCHEMA_REVISION}`."
        )


def require_migrated(connection: sa.Connection) -> None:
    """Raise ``SchemaBehind`` unless the schema is at this release's revision, and
    ``SchemaTooNew`` if a newer release's: a command that does not migrate (``retention run``
    deletes, ``token create`` inserts) must not write to a schema it does not know either."""
    revision = _revision(connection)
    _refuse_newer(revision)
    if revision is None:
        raise SchemaBehind(
            "The database has no caf-relay schema yet: run `caf-relay db upgrade` first."
        )
    if revision < SCHEMA_REVISION:
        raise SchemaBehind(
            f"The database's schema is at revision {revision}, older than this release's "
            f"{SCHEMA_REVISION}: run `caf-relay db upgrade` first."
        )


def downgrade_plan(connection: sa.Connection, target: str) -> list[Migration]:
    """The migrations that taking the schema back to revision ``target`` undoes, newest first;
    ``ValueError`` if ``target`` is not one of this release's revisions, or not behind the
    schema. Only this release, or a newer one, knows how to undo its migrations."""
    revision = _revision(connection)
    _refuse_newer(revision)
    if revision is None:
        raise SchemaBehind("The database has no caf-relay schema: there is nothing to downgrade.")
    scripts = _scripts(_alembic(connection))
    if target not in {script.revision for script in scripts.walk_revisions()}:
        raise ValueError(
            f"{target!r} is not a revision of this release: give one from 0001 to "
            f"{SCHEMA_REVISION}, the revision the release rolled back to needs."
        )
    if target > revision:
        raise ValueError(
            f"The database's schema is at revision {revision}, behind {target}: "
            "there is nothing to downgrade."
        )
    return [_migration(script) for script in scripts.iterate_revisions(revision, target)]


def take_schema_back_to(connection: sa.Connection, target: str) -> list[Migration]:
    """Undo the migrations after revision ``target``, one process at a time and in one
    transaction, as an upgrade applies them. Returns the migrations undone, newest first."""
    _lock_for_migrating(connection)
    due = downgrade_plan(connection, target)
    if not due:
        return []
    return _run(_alembic(connection), "downgrade", target, due, due[0].revision)


def _alembic(connection: sa.Connection):
    """Alembic's configuration for this release's migrations, run on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _scripts(config):
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config)


def _run(
    config, direction: str, target: str, due: list[Migration], revision: str | None
) -> list[Migration]:
    """Run Alembic's ``direction`` (upgrade or downgrade) to ``target`` through ``due``, the
    migrations in the order it takes them. One that fails is ``MigrationFailed``, naming it and
    the revision the database is left at: the caller's transaction is rolled back, not
    committed, so none of ``due`` stays done."""
    from alembic import command

    done: list[object] = []
    config.attributes["on_version_apply"] = lambda **step: done.append(step)
    try:
        getattr(command, direction)(config, target)
    except Exception as exc:
        failed = due[len(done)]
        # The driver's first line: PostgreSQL's DETAIL, on the next, may quote a row's values.
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0].rstrip(".")
        left = f"revision {revision}" if revision else "no schema"
        raise MigrationFailed(
            f"Migration {failed.revision} ({failed.title}) failed to {direction}: {cause}. "
            f"The database is left at {left}, as it was before this {direction}."
        ) from exc
    return due


@contextmanager
def unavailable_as_store_error() -> Iterator[None]:
    """The database not answering, refusing every change, or the connection lost, as
    ``StoreUnavailable``: the one error callers wait out (the worker) or report in a line (the
    command line). A primary turned read-only by a failover, or a grant revoked, fails every
    message alike, so it is waited out too rather than taken for a fault of each message
    (which would dead-letter good transfers); a message's own fault is a DataError or an
    IntegrityError."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(f"The database is unavailable: {exc.orig or exc}") from exc
    except (InternalError, ProgrammingError) as exc:
        if getattr(exc.orig, "sqlstate", None) not in REFUSES_EVERY_CHANGE:
            raise
        raise StoreUnavailable(f"The database refused the change: {exc.orig}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"The database connection was lost: {exc.orig}") from exc
        raise


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (kept in the file once done). The switch needs the file to
    itself for a moment, and SQLite refuses at once ("database is locked") rather than waiting
    its busy timeout, so a process starting beside others on a new file tries again; on 2
    cores, 17 of 600 processes starting four at a time failed before it did."""
    import sqlite3  # here: a PostgreSQL store has no use for it (about 1 MB a process)

    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


@contextmanager
def busy_within(connection: sa.Connection, seconds: float) -> Iterator[None]:
    """A SQLite ``connection`` waiting at most ``seconds`` for the write lock while the block
    runs, rather than ``BUSY_SECONDS``; set on the driver's connection, so before the block's
    first statement begins its transaction. Nothing to bound on PostgreSQL."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    driver.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")


def make_engine(url: str) -> sa.Engine:
    # hide_parameters: a failing statement's values are a child's data; they stay out of logs.
    if not url.startswith("sqlite"):
        # A call must fail within the broker's heartbeat, not hang, so that the worker waits
        # out the outage holding its messages: the server ends a slow statement; TCP keepalives
        # and tcp_user_timeout end a call to a host that stopped answering, which cannot.
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            json_serializer=json_text,
            connect_args={
                "connect_timeout": 5,
                "options": "-c statement_timeout=30000",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": 30000,
            },
        )
    # The driver's own transaction handling is switched off (isolation_level=None) so that every
    # transaction, DDL included, is a real one that starts with BEGIN IMMEDIATE: processes then
    # queue for the write lock up front instead of failing half-way (SQLAlchemy's pysqlite recipe).
    engine = sa.create_engine(
        url,
        hide_parameters=True,
        json_serializer=json_text,
        connect_args={
            "check_same_thread": False,
            "timeout": BUSY_SECONDS,
            "isolation_level": None,
        },
    )

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        # WAL lets the web app read while the worker writes; FULL makes each commit survive a
        # power cut, not only a crash, since a message is acknowledged once it is committed.
        cursor = dbapi_connection.cursor()
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        # A snapshot only reads: under WAL a plain BEGIN gives it a consistent view without
        # holding the write lock (and so every writer) for as long as it reads.
        read_only = connection.get_execution_options().get(READ_ONLY_SNAPSHOT)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
