"""A PostgreSQL database that refuses every change, as after a failover to a standby."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from service.bootstrap import Services


@contextmanager
def refusing_changes(services: Services) -> Iterator[None]:
    """Every new transaction on the services' database is read-only until the block ends;
    skips the test on SQLite, whose read-only file is a different failure."""
    engine = sa.create_engine(services.store.url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("SQLite's read-only file is an OperationalError, unavailable already")
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
