"""``caf-relay db ...``, as a deploy pipeline runs it: its output ends up in the pipeline's log."""

import pytest
from sqlalchemy.engine import make_url

from tests.support.cli import runner


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
    assert upgraded.output == f"Database at the newest schema: {where}\n"
    assert "s3cret" not in upgraded.output
