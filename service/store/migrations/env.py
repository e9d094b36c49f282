"""Alembic environment: runs on the connection the store hands over, or on the ini's URL."""

from alembic import context
from sqlalchemy import create_engine

from service.store.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
        # The store's count of the migrations done, to name the one that fails.
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
