"""Running the store's Alembic migrations to a revision, as ``caf-relay db upgrade`` would."""

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from service.store.engine import MIGRATIONS


def down_and_up_again(engine: sa.Engine, revision: str) -> None:
    """Downgrade the database to ``revision``, then upgrade it to the newest again."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for migrate, target in ((command.downgrade, revision), (command.upgrade, "head")):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            migrate(config, target)
