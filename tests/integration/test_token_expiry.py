"""API tokens expire: a token past its expiry is a 401 that says so (logged, not audited, like
every 401), one a moment before it still works, and one made before tokens expired (migration
0009) expires 90 days after the upgrade to 0013, which says so. The command line makes them with
an expiry and lists it."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.access import OPERATOR, Role, new_token
from service.domain.isotime import iso
from service.store.tables import ApiToken, Base
from service.web import create_app
from tests.conftest import fixed_clock, fresh_database, services_on
from tests.support.cli import runner
from tests.support.migrations import down_and_up_again, migrate
from tests.support.store_reads import audit_actions

AUTHORITIES = "/api/v1/authorities"
ISLINGTON = "E09000019"
OLD_TOKEN = sa.text(
    "INSERT INTO api_tokens (token_id, name, role, authority_code, digest, created_at)"
    " VALUES (:id, 'Ops team', 'admin', NULL, :digest, :at)"
)
TOKEN_WITH_EXPIRY = sa.text(
    "INSERT INTO api_tokens (token_id, name, role, authority_code, digest, created_at, expires_at)"
    " VALUES (:id, 'Prometheus', 'monitor', NULL, :digest, :at, :until)"
)
EXPIRIES = sa.select(ApiToken.token_id, ApiToken.expires_at).order_by(ApiToken.created_at)


class Clock:
    """A clock the test sets: the web app's idea of now."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_a_token_works_until_its_expiry_and_is_then_refused_saying_so_but_not_audited(
    services, caplog
):
    made = fixed_clock()
    expires_at = made + timedelta(days=1)
    issued = services.store.access.create_token(
        name="Islington Mosaic",
        role=Role.PUBLISHER,
        authority=ISLINGTON,
        now=made,
        expires_at=expires_at,
        by=OPERATOR,
    )
    clock = Clock(expires_at - timedelta(seconds=1))
    client = create_app(replace(services, clock=clock)).test_client()
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert client.get(AUTHORITIES, headers=headers).status_code == 200, "a second before"

    audited = len(audit_actions(services.store))
    clock.at = expires_at
    with caplog.at_level(logging.WARNING, logger="service.api.guard"):
        refused = client.get(AUTHORITIES, headers=headers)
    said = f"This token expired at {iso(expires_at)}; ask an admin for a new one."
    assert refused.status_code == 401 and refused.get_json()["detail"] == said
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="caf-relay", error="invalid_token"'
    assert said in caplog.records[-1].getMessage() and issued.secret not in caplog.text
    assert len(audit_actions(services.store)) == audited, "a 401 is logged, not audited"


def test_the_command_line_makes_a_token_with_its_expiry_and_lists_it(services):
    run = runner(services)
    made = run("token", "create", "--name", "Islington Mosaic", "--role", "publisher",
               "--authority", ISLINGTON, "--expires-in-days", "30")  # fmt: skip
    assert made.exit_code == 0, made.output
    [listed] = json.loads(run("token", "list", "--json").output)
    created_at = datetime.fromisoformat(listed["created_at"])
    assert datetime.fromisoformat(listed["expires_at"]) - created_at == timedelta(days=30)
    assert f"expiring at {listed['expires_at']}:" in made.stderr
    [(_, action, detail)] = audit_actions(services.store)
    assert action == "token_created" and detail["expires_at"] == listed["expires_at"]
    header, row = run("token", "list").output.splitlines()
    assert "EXPIRES_AT" in header.split() and listed["expires_at"] in row.split()

    by_default = run("token", "create", "--name", "Ops team", "--role", "admin")
    assert by_default.exit_code == 0, by_default.output
    newest = json.loads(run("token", "list", "--json").output)[-1]
    lasts = datetime.fromisoformat(newest["expires_at"]) - datetime.fromisoformat(
        newest["created_at"]
    )
    assert lasts == timedelta(days=90)
    for days in ("0", "366"):
        refused = run("token", "create", "--name", "x", "--role", "admin", "--expires-in-days",
                      days)  # fmt: skip
        assert refused.exit_code == 2 and "1<=x<=365" in refused.output


def test_a_token_made_before_expiry_existed_expires_90_days_after_the_upgrade_that_says_so(
    tmp_path,
):
    old_id, old_secret, old_digest = new_token()
    kept_id, _, kept_digest = new_token()
    kept_expiry = fixed_clock() + timedelta(days=30)
    with fresh_database(tmp_path) as url:
        engine = sa.create_engine(url)
        migrate(engine, command.upgrade, "0008")
        with engine.begin() as connection:
            connection.execute(OLD_TOKEN, {"id": old_id, "digest": old_digest, "at": fixed_clock()})
        migrate(engine, command.upgrade, "0012")  # as deployed until now: it never expired
        with engine.begin() as connection:
            connection.execute(
                TOKEN_WITH_EXPIRY,
                {"id": kept_id, "digest": kept_digest, "at": fixed_clock(), "until": kept_expiry},
            )
        upgraded = services_on(url, tmp_path)
        try:
            run = runner(upgraded)
            before = datetime.now(UTC).replace(microsecond=0)
            upgrading = run("db", "upgrade")
            after = datetime.now(UTC)
            assert upgrading.exit_code == 0, upgrading.output
            assert upgrading.output.splitlines()[0] == (
                "Applied 0013: Tokens made before migration 0009, which had no expiry, now expire"
                " 90 days after this upgrade, as every other token expires: caf-relay token list"
                " says when; give their holders new ones before then."
            )
            listed = {
                row["token_id"]: row for row in json.loads(run("token", "list", "--json").output)
            }
            expires_at = datetime.fromisoformat(listed[old_id]["expires_at"])
            assert before + timedelta(days=90) <= expires_at <= after + timedelta(days=90)
            assert datetime.fromisoformat(listed[kept_id]["expires_at"]) == kept_expiry
            row = run("token", "list").output.splitlines()[1].split()
            assert row[0] == old_id and listed[old_id]["expires_at"] in row

            clock = Clock(expires_at - timedelta(seconds=1))
            client = create_app(replace(upgraded, clock=clock)).test_client()
            headers = {"Authorization": f"Bearer {old_secret}"}
            assert client.get(AUTHORITIES, headers=headers).status_code == 200, "no one locked out"
            clock.at = expires_at
            refused = client.get(AUTHORITIES, headers=headers)
            assert refused.status_code == 401
            assert refused.get_json()["detail"] == (
                f"This token expired at {iso(expires_at)}; ask an admin for a new one."
            )
        finally:
            upgraded.close()
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            with pytest.raises(sa.exc.IntegrityError):
                connection.execute(OLD_TOKEN, {"id": "new", "digest": "0", "at": fixed_clock()})
        down_and_up_again(engine, "0012")
        with engine.connect() as connection:
            kept = connection.execute(EXPIRIES).all()
        assert kept == [(old_id, expires_at), (kept_id, kept_expiry)]
        engine.dispose()
