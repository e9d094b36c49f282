"""A PostgreSQL database that refuses every change, as after a failover to a standby."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
import sqlalchemy as sa

from service.bootstrap import Services


def refusing_changes(services: Services) -> AbstractContextManager[None]:
    """Every new transaction on the services' database is read-only while the returned context
    is entered. Skips the test on SQLite, whose read-only file is a different failure, at once:
    call it before starting anything a skip would leave running."""
    engine = sa.create_engine(services.store.url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("SQLite's read-only file is an OperationalError, unavailable already")
    return _read_only(services, engine)


@contextmanager
def _read_only(services: Services, engine: sa.Engine) -> Iterator[None]:
    database = engine.url.database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
    services.store.drop_connections()
    try:
        yield
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                sa.text(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            )
        services.store.drop_connections()
        engine.dispose()
