"""The domain stays pure: importing it loads no web, broker, database or schema library.

Run in a fresh interpreter, since this one has already imported them for other tests.
"""

import pkgutil
import subprocess
import sys

import service.domain

EDGE_LIBRARIES = {"flask", "flask_smorest", "pika", "sqlalchemy", "psycopg", "marshmallow"}


def test_the_domain_imports_no_edge_library():
    modules = [f"service.domain.{m.name}" for m in pkgutil.iter_modules(service.domain.__path__)]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert EDGE_LIBRARIES.isdisjoint(run.stdout.split())
