"""The ``caf-relay`` command line, run in-process against a test's store."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner, Result

from service.bootstrap import Services
from service.cli import main


def environment(services: Services) -> dict[str, str]:
    """The settings a caf-relay process needs to work on the same store as ``services``."""
    settings = services.settings
    return {
        "CAF_RELAY_INSTANCE_DIR": str(settings.instance_dir),
        "CAF_RELAY_DATABASE_URL": settings.database_url,
        "CAF_RELAY_SECRETS_KEYS": ",".join(settings.secrets_keys),
    }


def runner(services: Services) -> Callable[..., Result]:
    """``run(*args, stdin=None, **settings)``: one command, with extra ``CAF_RELAY_*`` settings.

    Standard error is kept apart from the output, so ``--json`` output parses.
    """
    env = environment(services)

    def run(*args: str, stdin: str | None = None, **settings: str) -> Result:
        return CliRunner().invoke(main, list(args), input=stdin, env={**env, **settings})

    return run
