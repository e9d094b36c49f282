"""Running the store's Alembic migrations to a revision, as ``caf-relay db upgrade`` would."""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from service.store.engine import MIGRATIONS

# A trigger that fails any change to the audit's chain head, as migration 0010 makes one.
REFUSING_HEAD_UPDATES = {
    "sqlite": (
        [
            "CREATE TRIGGER refuse_head BEFORE UPDATE ON audit_chain_head"
            " BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        ],
        "DROP TRIGGER refuse_head",
    ),
    "postgresql": (
        [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$",
            "CREATE TRIGGER refuse_head BEFORE UPDATE ON audit_chain_head"
            " FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
        "DROP TRIGGER refuse_head ON audit_chain_head",
    ),
}


def migrate(engine: sa.Engine, how: Callable[[Config, str], None], revision: str) -> None:
    """Bring the database to ``revision`` with ``how``: ``command.upgrade`` or ``downgrade``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        how(config, revision)


def down_and_up_again(engine: sa.Engine, revision: str) -> None:
    """Downgrade the database to ``revision``, then upgrade it to the newest again."""
    migrate(engine, command.downgrade, revision)
    migrate(engine, command.upgrade, "head")
