"""The JSON columns' text: what the standard library wrote, read back the same, and refused
where it refused."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from service.store.json_text import json_text


@pytest.mark.parametrize(
    "document",
    [
        {"case": {"name": "Zo\u00eb", "line": "\u2028", "quote": '"', "tab": "\t"}, "n": [1, None]},
        {"big": 2**70, "small": -(2**70)},
        {"ratio": 1e-05, "percent": 99.5},
    ],
    ids=["text", "integers-beyond-64-bits", "floats"],
)
def test_what_is_written_reads_back_as_the_same_document(document):
    assert json.loads(json_text(document)) == document


def test_keys_that_are_not_text_are_written_as_the_standard_library_wrote_them():
    assert json.loads(json_text({7: "seven", True: "yes"})) == {"7": "seven", "true": "yes"}


@dataclass
class _Record:
    at: str


@pytest.mark.parametrize("value", [datetime(2026, 12, 1, tzinfo=UTC), _Record("now")])
def test_a_value_the_standard_library_refused_is_still_refused(value):
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"value": value})
