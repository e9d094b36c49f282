"""The HTTP API against its own OpenAPI document, over a real HTTP server.

The document must be valid OpenAPI; then schemathesis generates requests for every operation,
sent with a valid token, and no answer may be a 5xx or differ from what the document promises.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate
from werkzeug.serving import make_server

from service.web import create_app
from tests.support import examples
from tests.support.https_receiver import HttpsReceiver, receive_everything_at
from tests.support.tokens import bearer

HACKNEY = "E09000012"


@pytest.fixture
def live_api(services, tmp_path) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """caf-relay's app on a real HTTP server, with an ISP, adapters and tokens in place."""
    services.store.add_isp(examples.pan_london_isp())
    with HttpsReceiver(tmp_path) as receiver:
        receive_everything_at(services.store, receiver)
        server = make_server("127.0.0.1", 0, create_app(services), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        tokens = {
            "admin": bearer(services, "admin"),
            "publisher": bearer(services, "publisher", HACKNEY),
        }
        try:
            yield f"http://127.0.0.1:{server.server_port}", tokens
        finally:
            server.shutdown()
            thread.join(5)


def test_the_openapi_document_is_valid(live_api):
    url, _ = live_api
    validate(requests.get(f"{url}/openapi.json", timeout=10).json())


CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


@pytest.mark.parametrize(
    ("role", "operations"),
    [
        ("admin", ["--exclude-path", "/api/v1/events"]),
        ("publisher", ["--include-path", "/api/v1/events"]),
    ],
)
def test_a_schemathesis_run_finds_no_server_error_and_no_broken_response(
    live_api, role, operations, tmp_path
):
    url, tokens = live_api
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"Authorization:{tokens[role]['Authorization']}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--suppress-health-check",
            "all",
            *operations,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # schemathesis keeps its state in .schemathesis/ there
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
