"""The log format: one JSON object a line, the event in hand named on every line about it."""

import io
import json
import logging
import threading

import pytest

from service.logs import EventIdFilter, JsonFormatter, own_log_context, set_event_id


@pytest.fixture
def lines():
    """Lines logged through the handler the processes use, as parsed JSON objects."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(EventIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


@own_log_context
def _handle(event_id: str) -> None:
    logging.getLogger("test.logs.deep").info("before the id is known")
    set_event_id(event_id)
    logging.getLogger("test.logs.deep").info("handling it")


def test_lines_logged_while_an_event_is_handled_name_it_and_later_lines_do_not(lines):
    _handle("ev-1")
    logging.getLogger("test.logs").info("between events")
    worker = threading.Thread(target=_handle, args=("ev-2",))
    worker.start()
    worker.join()
    assert [(line["message"], line.get("event_id")) for line in lines()] == [
        ("before the id is known", None),
        ("handling it", "ev-1"),
        ("between events", None),
        ("before the id is known", None),
        ("handling it", "ev-2"),
    ]


def test_a_line_has_its_fields_and_no_others_and_the_traceback(lines):
    log = logging.getLogger("test.logs")
    log.warning("failed %s", "once", extra={"adapter_type": "https", "body": "a child's data"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("with a traceback", extra={"event_id": "named-by-the-call"})
    first, second = lines()
    assert first.keys() == {"time", "level", "logger", "message", "adapter_type"}
    assert (first["level"], first["logger"], first["message"]) == (
        "WARNING",
        "test.logs",
        "failed once",
    )
    assert second["event_id"] == "named-by-the-call"
    assert "RuntimeError: boom" in second["exception"]
