"""Valid JSON that could not be signed (an unpaired surrogate) or stored (NUL) is refused."""

import json

import pytest

from service.domain.storable import unstorable


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Zoë", "note": "tab\\tand quote \\" ok"}',
        '{"path": "C:\\\\u0000"}',  # an escaped backslash, then the letters u0000: not NUL
        '{"emoji": "\\ud83d\\ude00"}',  # a paired surrogate escape is one character
    ],
)
def test_what_can_be_signed_and_stored_passes(text):
    body = text.encode()
    assert unstorable(json.loads(body), parsed_from=body) is None
    assert unstorable(json.loads(body)) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"name": "\\ud800"}', "unpaired UTF-16 surrogate"),
        ('{"name": "a\\u0000b"}', "NUL character"),
        ('{"path": "\\\\\\u0000"}', "NUL character"),  # an escaped backslash, then a NUL
    ],
)
def test_what_cannot_be_is_refused_saying_why(text, why):
    body = text.encode()
    assert why in unstorable(json.loads(body), parsed_from=body)
    assert why in unstorable(json.loads(body))


def test_utf16_bodies_are_checked_in_full():
    body = '{"name": "a\\u0000b"}'.encode("utf-16")
    assert "NUL character" in unstorable(json.loads(body), parsed_from=body)
