"""The text the store writes for a JSON column.

Every event stored writes several JSON documents (the transfer, its envelope, its audit
records); the standard library's encoder spent about 3% of intake's CPU on them, and orjson
writes the same values about ten times as fast. It is only storage: what is signed and
hashed keeps its one canonical encoding (``service.domain.canonical``), and the text is parsed
back with the standard library, which reads any integer, as the columns were always read.
orjson writes NaN and the infinities as null, where the standard library writes tokens that
are not JSON; no stored document holds them, as the contracts and the API's schemas refuse
them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Types orjson would encode and the standard library refuses go to the fallback, which refuses
# them too: a value the store could not write before is not written now.
_ONLY_JSON_TYPES = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(document: Any) -> str:
    """``document`` as JSON text; with the standard library what orjson cannot write (an
    integer beyond 64 bits, a key that is not a string)."""
    try:
        return orjson.dumps(document, option=_ONLY_JSON_TYPES).decode()
    except TypeError:
        return json.dumps(document)
