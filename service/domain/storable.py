"""What valid JSON can still not be signed or stored, checked where input comes in.

Signing needs UTF-8, which an unpaired surrogate escape ("\\ud800") cannot be; PostgreSQL's
JSONB and text columns refuse the NUL character ("\\u0000"). Input holding either would
otherwise fail later, on every delivery of a message or as a server error, as if it were a bug.
Nor can JSON be read at all if it holds an integer longer than Python converts: ``json.loads``
raises a plain ``ValueError`` for it, not the ``JSONDecodeError`` of broken JSON.

Words from outside that are recorded rather than refused (what a recipient answered a
delivery) have those characters replaced instead (``storable_text``).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# A surrogate in a Python string is always unpaired: json.loads joins an escaped pair into one.
_UNSTORABLE_CHARACTER = re.compile(r"[\x00\ud800-\udfff]")


def unreadable(exc: ValueError | RecursionError) -> str:
    """Why ``json.loads`` refused JSON that is not broken: nested deeper than Python recurses,
    or an integer longer than it converts (its only ``ValueError`` other than a
    ``JSONDecodeError``, or a ``UnicodeDecodeError`` for bytes that are not text)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply."
    return f"a number has more than {sys.get_int_max_str_digits()} digits."


def storable_text(text: str) -> str:
    """``text`` with each NUL character and unpaired surrogate replaced by U+FFFD: for words
    from outside that are recorded, not refused, such as what a recipient answered a delivery
    (its HTTP reason phrase, its receipt), which would otherwise sink the record of it."""
    return _UNSTORABLE_CHARACTER.sub("\ufffd", text)


def unstorable(document: Any, parsed_from: bytes | None = None) -> str | None:
    """Why valid JSON could still not be signed or stored, if it could not; ``parsed_from``, the
    bytes it was parsed from, clears most documents without encoding them again."""
    if parsed_from is not None and _plainly_storable(parsed_from):
        return None
    text = json.dumps(document, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds an unpaired UTF-16 surrogate escape."
    # The substring test first: it is cheap, and the pattern (which tells an escaped NUL from
    # an escaped backslash followed by "u0000") is slow over a whole event.
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        return "a string holds the NUL character."
    return None


def _plainly_storable(body: bytes) -> bool:
    """True if the text parsed from ``body`` cannot hold a surrogate or a NUL, as its bytes show.

    A parsed string holds either only through a ``\\u`` escape or a surrogate's raw bytes,
    which strict UTF-8 refuses (a raw NUL is not JSON); UTF-16 and UTF-32, which the parser also
    reads, always hold NUL bytes.
    """
    if b"\\u" in body or b"\x00" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
