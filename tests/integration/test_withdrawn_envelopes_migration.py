"""Migration 0008 on a store populated at 0007: every envelope and delivery attempt kept, one
envelope not withdrawn a transfer, and no downgrade while an envelope is withdrawn."""

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.store.engine import make_engine
from service.store.tables import Base
from tests.conftest import fixed_clock, fresh_database
from tests.support.isps import NEWHAM, TOWER_HAMLETS
from tests.support.migrations import migrate

AUTHORITY = sa.text(
    "INSERT INTO authorities (code, name, kind) VALUES (:c, :c, 'local_authority')"
    " ON CONFLICT DO NOTHING"
)
TRANSFER = sa.text(
    "INSERT INTO transfers (event_id, case_reference, from_authority, to_authority, mode,"
    " purpose, state, decision, event, received_at, updated_at) VALUES"
    " (:e, 'CAF', :f, :t, 'routine', 'safeguarding', 'signed', '{}', '{}', :at, :at)"
)
ENVELOPE = sa.text(
    "INSERT INTO envelopes (envelope_id, event_id, kid, jws, sha256, issued_at)"
    " VALUES (:v, :e, 'k', 'x', '0', :at)"
)
ATTEMPT = sa.text(
    "INSERT INTO delivery_attempts (envelope_id, attempted_at, adapter_type, succeeded,"
    " retryable, detail, duration_ms, receipt) VALUES (:v, :at, 'https', :ok, true, :d, 5, NULL)"
)
ATTEMPTS = sa.text("SELECT id, envelope_id, detail FROM delivery_attempts ORDER BY id")


def _count(connection, table: str) -> int:
    return connection.scalar(sa.text(f"SELECT count(*) FROM {table}"))


def test_0008_keeps_a_populated_store_and_refuses_to_go_down_with_an_envelope_withdrawn(
    tmp_path,
):
    at = fixed_clock()
    with fresh_database(tmp_path) as url:
        # The store's own engine: on SQLite its DDL is transactional, so the refused downgrade
        # also undoes 0009's, which runs before it (a plain pysqlite engine commits DDL at once).
        engine = make_engine(url)
        migrate(engine, command.upgrade, "0007")
        with engine.begin() as c:
            for code in (NEWHAM, TOWER_HAMLETS):
                c.execute(AUTHORITY, {"c": code})
            for n in range(3):
                c.execute(TRANSFER, {"e": f"e-{n}", "f": NEWHAM, "t": TOWER_HAMLETS, "at": at})
                c.execute(ENVELOPE, {"v": f"env-{n}", "e": f"e-{n}", "at": at})
                for k in range(2):
                    c.execute(ATTEMPT, {"v": f"env-{n}", "at": at, "ok": False, "d": f"{n}{k}"})
            before = c.execute(ATTEMPTS).all()
        migrate(engine, command.upgrade, "head")
        with engine.begin() as c:
            assert c.execute(ATTEMPTS).all() == before
            assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []
            c.execute(sa.text("UPDATE envelopes SET withdrawn_at = :at WHERE event_id = 'e-0'"),
                      {"at": at})  # fmt: skip
            c.execute(ENVELOPE, {"v": "env-0b", "e": "e-0", "at": at})
            c.execute(ATTEMPT, {"v": "env-0b", "at": at, "ok": True, "d": "delivered"})
            with pytest.raises(sa.exc.IntegrityError), c.begin_nested():
                c.execute(ENVELOPE, {"v": "env-0c", "e": "e-0", "at": at})
        with pytest.raises(RuntimeError, match="withdrawn"):
            migrate(engine, command.downgrade, "0007")
        with engine.begin() as c:
            assert (_count(c, "envelopes"), _count(c, "delivery_attempts")) == (4, 7)
            assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []
            c.execute(sa.text("DELETE FROM delivery_attempts WHERE envelope_id = 'env-0'"))
            c.execute(sa.text("DELETE FROM envelopes WHERE envelope_id = 'env-0'"))
        migrate(engine, command.downgrade, "0007")
        migrate(engine, command.upgrade, "head")
        with engine.begin() as c:
            assert (_count(c, "envelopes"), _count(c, "delivery_attempts")) == (3, 5)
        engine.dispose()
