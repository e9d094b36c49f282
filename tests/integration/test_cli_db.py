"""``caf-relay db ...``, as a deploy pipeline runs it: its output ends up in the pipeline's log."""

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from service.cli import main
from service.store.engine import MIGRATIONS, SCHEMA_REVISION
from tests.conftest import fresh_database
from tests.support.cli import runner
from tests.support.migrations import REFUSING_HEAD_UPDATES, migrate
from tests.support.processes import CAF_RELAY

VERSIONS = MIGRATIONS / "versions"


def test_db_upgrade_says_where_without_a_password_from_the_url_or_its_query(services):
    url = make_url(services.settings.database_url)
    if url.drivername.startswith("sqlite"):
        pytest.skip("a SQLite URL holds no password")
    given = url.set(password="s3cret-in-the-url", query={"password": "s3cret-in-the-query"})
    run = runner(services)
    upgraded = run(
        "db", "upgrade", CAF_RELAY_DATABASE_URL=given.render_as_string(hide_password=False)
    )
    assert upgraded.exit_code == 0, upgraded.output
    where = f"{url.drivername}://{url.username}:***@{url.host}:{url.port}/{url.database}"
    assert upgraded.output == (
        f"Database already at the newest schema ({SCHEMA_REVISION}), nothing to apply: {where}\n"
    )
    assert "s3cret" not in upgraded.output


@pytest.mark.parametrize("folder", ["what?now", "caf%41relay", "case #1"])
def test_db_upgrade_keeps_the_default_database_in_an_instance_folder_of_any_name(tmp_path, folder):
    """With no database URL set, the SQLite file is made in the instance folder, whatever its
    name: a '?' in it used to end the path there (the database was made beside the folder, as
    "what"), and a '%41' was read as an escape ("cafArelay", which does not exist)."""
    instance = tmp_path / folder
    instance.mkdir()
    upgraded = CliRunner().invoke(
        main,
        ["db", "upgrade"],
        env={"CAF_RELAY_INSTANCE_DIR": str(instance), "CAF_RELAY_DATABASE_URL": None},
    )
    assert upgraded.exit_code == 0, upgraded.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    assert (instance / "caf-relay.sqlite3").is_file()


@pytest.mark.parametrize("command", [("db", "upgrade"), ("retention", "run"), ("token", "list")])
def test_a_database_a_newer_release_migrated_is_refused_in_one_line_and_left_as_it_is(
    services, tmp_path, command
):
    """After a rollback: this release cannot migrate a schema it does not know, or write to
    it. It was an Alembic traceback ("Can't locate revision identified by ..."). The database is
    the test's own: the session's, left at that revision, would be refused to every later test.
    A command that does not migrate (retention run, token list) went on to read and write it."""
    run = runner(services)
    with fresh_database(tmp_path) as url:
        assert run("db", "upgrade", CAF_RELAY_DATABASE_URL=url).exit_code == 0
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
            upgraded = run(*command, CAF_RELAY_DATABASE_URL=url)
            with engine.connect() as conn:
                assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "9999"
        finally:
            engine.dispose()
    assert upgraded.exit_code == 1
    assert upgraded.output == (
        f"Error: The database's schema is at revision 9999, newer than this release's "
        f"{SCHEMA_REVISION}: run the release that migrated it, or first take the database back "
        f"with that release's `caf-relay db downgrade {SCHEMA_REVISION}`.\n"
    )


@pytest.mark.parametrize(
    "command", [("transfer", "list"), ("retention", "run"), ("audit", "verify"), ("isp", "list")]
)
def test_a_command_on_a_database_not_yet_migrated_says_to_run_db_upgrade(
    services, tmp_path, command
):
    """It said "The database is unavailable: no such table: ..." on SQLite, and was a
    traceback on PostgreSQL (and for audit verify on SQLite too)."""
    run = runner(services)
    with fresh_database(tmp_path) as url:
        refused = run(*command, CAF_RELAY_DATABASE_URL=url)
        assert run("db", "upgrade", CAF_RELAY_DATABASE_URL=url).exit_code == 0
        assert run(*command, CAF_RELAY_DATABASE_URL=url).exit_code == 0
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: The database has no caf-relay schema yet: run `caf-relay db upgrade` first.\n"
    )


def test_a_command_on_a_database_an_older_release_migrated_says_to_run_db_upgrade(
    services, tmp_path
):
    run = runner(services)
    with fresh_database(tmp_path) as url:
        assert run("db", "upgrade", CAF_RELAY_DATABASE_URL=url).exit_code == 0
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:  # as the schema an earlier release left
                conn.execute(sa.text("UPDATE alembic_version SET version_num = '0009'"))
        finally:
            engine.dispose()
        listed = run("transfer", "list", CAF_RELAY_DATABASE_URL=url)
    assert listed.exit_code == 1
    assert listed.output == (
        f"Error: The database's schema is at revision 0009, older than this release's "
        f"{SCHEMA_REVISION}: run `caf-relay db upgrade` first.\n"
    )


def _upgrade(url: str, instance: Path) -> subprocess.CompletedProcess:
    """``caf-relay db upgrade`` as a deploy pipeline or an operator at a terminal runs it."""
    return subprocess.run(
        [CAF_RELAY, "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "CAF_RELAY_INSTANCE_DIR": str(instance),
            "CAF_RELAY_DATABASE_URL": url,
        },
    )


def test_db_upgrade_says_each_migration_it_applied_in_a_line_and_then_where_the_schema_is(
    tmp_path,
):
    """It printed Alembic's narration as ~20 JSON log lines (plugins set up, DDL assumed
    transactional, a migration's docstring across lines) before its one line of its own."""
    revisions = [path.name[:4] for path in sorted(VERSIONS.glob("[0-9]*.py"))]
    with fresh_database(tmp_path) as url:
        where = make_url(url).render_as_string(hide_password=True)
        first = _upgrade(url, tmp_path)
        again = _upgrade(url, tmp_path)

    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    lines = first.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"Applied {r}" for r in revisions]
    assert lines[1] == (
        "Applied 0002: Access: hashed API tokens with roles, and the broker users that publish "
        "for an authority."
    )
    assert lines[9] == (  # its docstring marks up a column's name, which a terminal shows bare
        "Applied 0010: How far the audit's recorded_at runs backwards along seq, kept on the "
        "chain head."
    )
    assert lines[-1] == (
        f"Database at the newest schema ({SCHEMA_REVISION}), {len(revisions)} migrations "
        f"applied: {where}"
    )
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert again.stdout == (
        f"Database already at the newest schema ({SCHEMA_REVISION}), nothing to apply: {where}\n"
    )


def _at(url: str) -> tuple[str, list[str]]:
    """The schema's revision, and the dead letters' columns (0012 adds ``event_id``)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            revision = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        return revision, [c["name"] for c in sa.inspect(engine).get_columns("dead_letters")]
    finally:
        engine.dispose()


def test_db_downgrade_lists_what_it_undoes_and_loses_asks_and_then_takes_the_schema_back(
    services, tmp_path
):
    """Rolling back to an earlier release: its processes refuse a database a newer one
    migrated, and nothing in the wheel or the image ran the migrations' downgrades. Answered
    no, nothing is undone; with --yes, the schema is the earlier release's, and `db upgrade`
    brings it forward again."""
    run = runner(services)
    with fresh_database(tmp_path) as url:
        assert run("db", "upgrade", CAF_RELAY_DATABASE_URL=url).exit_code == 0
        declined = run("db", "downgrade", "0011", stdin="n\n", CAF_RELAY_DATABASE_URL=url)
        after_declining = _at(url)
        downgraded = run("db", "downgrade", "0011", "--yes", CAF_RELAY_DATABASE_URL=url)
        after_downgrading = _at(url)
        again = run("db", "downgrade", "0011", "--yes", CAF_RELAY_DATABASE_URL=url)
        listed = run("transfer", "list", CAF_RELAY_DATABASE_URL=url)
        upgraded = run("db", "upgrade", CAF_RELAY_DATABASE_URL=url)
        after_upgrading = _at(url)
    where = make_url(url).render_as_string(hide_password=True)
    plan = (
        "Undo 0013: Tokens made before migration 0009, which had no expiry, now expire 90 days "
        "after this upgrade, as every other token expires: caf-relay token list says when; give "
        "their holders new ones before then.\n"
        "  Downgrading lets the column hold no expiry again but keeps every token's: the code "
        "before this migration applies them as they are.\n"
        "Undo 0012: Dead letters name their event id: the id a refusal's rejected audit record "
        "is under.\n"
        "  Downgrading drops the index and the column, and with it every dead letter's event id.\n"
    )
    assert declined.exit_code == 1
    assert declined.output == plan + "Undo 2 migrations, back to 0011? [y/N]: n\nAborted!\n"
    assert after_declining[0] == SCHEMA_REVISION
    assert "event_id" in after_declining[1]
    assert downgraded.exit_code == 0, downgraded.output
    assert downgraded.output == plan + f"Database at revision 0011, 2 migrations undone: {where}\n"
    assert after_downgrading[0] == "0011"
    assert "event_id" not in after_downgrading[1]
    assert again.output == f"Database already at revision 0011, nothing to undo: {where}\n"
    assert listed.exit_code == 1
    assert "at revision 0011, older than this release's" in listed.output
    assert upgraded.exit_code == 0, upgraded.output
    assert after_upgrading == after_declining


@pytest.mark.parametrize(
    ("revision", "why"),
    [
        ("0000", "'0000' is not a revision of this release: give one from 0001 to "),
        ("base", "'base' is not a revision of this release: give one from 0001 to "),
    ],
)
def test_db_downgrade_refuses_a_revision_this_release_does_not_have(services, revision, why):
    """ "base" would drop every table, and with them every transfer and the audit trail."""
    refused = runner(services)("db", "downgrade", revision, "--yes")
    assert refused.exit_code == 2
    assert f"Invalid value for 'REVISION': {why}{SCHEMA_REVISION}" in refused.output


def test_a_migration_that_fails_in_db_upgrade_is_named_in_one_line_and_nothing_is_applied(
    services, tmp_path
):
    """It was a traceback ending in the database's error, which named neither the migration
    nor whether the database had been changed."""
    run = runner(services)
    with fresh_database(tmp_path) as url:
        assert run("db", "upgrade", CAF_RELAY_DATABASE_URL=url).exit_code == 0
        # An audit record, so that there is a chain head for 0010 to update.
        made = run(
            "token", "create", "--name", "ops", "--role", "admin", CAF_RELAY_DATABASE_URL=url
        )
        assert made.exit_code == 0, made.output
        engine = sa.create_engine(url)
        try:
            migrate(engine, command.downgrade, "0009")
            with engine.begin() as conn:
                for statement in REFUSING_HEAD_UPDATES[engine.dialect.name][0]:
                    conn.execute(sa.text(statement))
        finally:
            engine.dispose()
        failed = run("db", "upgrade", CAF_RELAY_DATABASE_URL=url)
        revision, _ = _at(url)
    assert failed.exit_code == 1
    assert failed.output == (
        "Error: Migration 0010 (How far the audit's recorded_at runs backwards along seq, kept "
        "on the chain head.) failed to upgrade: refused for the test. The database is left at "
        "revision 0009, as it was before this upgrade.\n"
    )
    assert revision == "0009"
